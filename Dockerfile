# One image for both processes: `node --max-old-space-size=192 dist/src/app/main.js api` (the default)
# and `node --max-old-space-size=256 dist/src/app/main.js worker` (old space capped: docs/operations.md#memory).
# The build stage installs every dependency and compiles TypeScript to dist/ (`npm run build`); the
# final stage holds the production dependencies and the compiled code only, and runs as `node`.
# Install scripts are skipped: no production dependency needs one (the optional native add-ons and
# embedded PostgreSQL binaries are left out; the image always runs against DATABASE_URL / REDIS_URL).

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/migrations ./dist/migrations
COPY --from=build /app/dist/scripts ./dist/scripts
USER node
EXPOSE 3000
# The API answers /readyz (PostgreSQL and Redis reachable); a worker (HEARTBEAT_FILE set) is healthy
# while it touches that file, which it does on every outbox relay tick.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
  CMD ["node", "-e", "const f=process.env.HEARTBEAT_FILE;if(f){const s=require('fs').statSync(f,{throwIfNoEntry:false});process.exit(s&&Date.now()-s.mtimeMs<30000?0:1)}fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "--max-old-space-size=192", "dist/src/app/main.js", "api"]
