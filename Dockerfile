# One image for both processes: `npm run start:api` and `npm run start:worker`.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --include=dev
COPY . .
USER node
EXPOSE 3000
CMD ["node", "--import", "tsx", "src/app/main.ts", "api"]
