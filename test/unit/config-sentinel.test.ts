import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/platform/config';
import { sentinelsOf } from '../../src/platform/redis';

describe('REDIS_SENTINELS / REDIS_SENTINEL_NAME', () => {
  it('when REDIS_SENTINELS is unset or blank, then Redis is reached at REDIS_URL alone', () => {
    expect(sentinelsOf(loadConfig({}))).toBeUndefined();
    expect(sentinelsOf(loadConfig({ REDIS_SENTINELS: ' ' }))).toBeUndefined();
    expect(loadConfig({}).REDIS_SENTINEL_NAME).toBe('mymaster');
  });

  it('when REDIS_SENTINELS lists host:port entries, then each is parsed (IPv6 in brackets) with the master name', () => {
    const c = loadConfig({
      REDIS_SENTINELS: 's1.internal:26379, 10.0.0.2:26380,[::1]:26381',
      REDIS_SENTINEL_NAME: 'orders-redis',
    });
    expect(sentinelsOf(c)).toEqual({
      name: 'orders-redis',
      sentinels: [
        { host: 's1.internal', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      tls: false,
    });
  });

  it("when REDIS_SENTINELS are URLs, then the first one's user, password and rediss:// apply to every sentinel (26379 by default)", () => {
    const c = loadConfig({
      REDIS_SENTINELS: 'rediss://watch:s%40cret@s1.internal,s2.internal:26380',
    });
    expect(sentinelsOf(c)).toEqual({
      name: 'mymaster',
      sentinels: [
        { host: 's1.internal', port: 26379 },
        { host: 's2.internal', port: 26380 },
      ],
      username: 'watch',
      password: 's@cret',
      tls: true,
    });
  });

  it('when an entry is not host:port or the name is unusable, then loading fails with one line naming the variable', () => {
    for (const bad of ['s1.internal', 's1:0', 's1:70000', 'redis://s1:70000', 'http://s1:26379', 's1:26379,:1']) {
      let message = '';
      try {
        loadConfig({ REDIS_SENTINELS: bad });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = (err as Error).message;
      }
      expect(message, bad).toMatch(
        /^invalid configuration: REDIS_SENTINELS: entry \d must be host:port or a redis:\/\/ or rediss:\/\/ URL with a port of 1–65535$/,
      );
    }
    expect(() => loadConfig({ REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_NAME: 'a b' })).toThrow(
      /^invalid configuration: REDIS_SENTINEL_NAME:/,
    );
  });
  it('when both REDIS_CLUSTER_NODES and REDIS_SENTINELS are set, then loading fails naming both', () => {
    expect(() =>
      loadConfig({ REDIS_SENTINELS: 's1:26379', REDIS_CLUSTER_NODES: 'n1:7000', QUEUE_PREFIX: '{orderflow}' }),
    ).toThrow(/^invalid configuration: REDIS_SENTINELS: set either REDIS_CLUSTER_NODES .* or REDIS_SENTINELS/);
  });
});
