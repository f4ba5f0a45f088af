import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/platform/config';
import { assertPublicTarget, DeliveryError } from '../../src/notifications';

async function refusal(url: string): Promise<DeliveryError | undefined> {
  try {
    await assertPublicTarget(url);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(DeliveryError);
    return err as DeliveryError;
  }
}

describe('webhook targets under WEBHOOK_PRIVATE_TARGETS=deny', () => {
  it('when the host is a loopback, private, link-local, metadata, mapped or unspecified address, then it is refused for good', async () => {
    for (const url of [
      'http://127.0.0.1:8080/h',
      'http://10.1.2.3/h',
      'http://172.20.0.1/h',
      'http://192.168.1.10/h',
      'http://169.254.169.254/latest/meta-data',
      'http://100.64.0.1/',
      'http://0.0.0.0:3000/',
      'http://[::1]/h',
      'http://[fd12:3456::1]/h',
      'http://[fe80::1]/h',
      'http://[::ffff:127.0.0.1]/h',
      'http://[::]/h',
      'http://localhost:3000/h',
      'http://2130706433/h',
      'http://0x7f.1/h',
    ]) {
      const err = await refusal(url);
      expect(err, url).toBeDefined();
      expect(err!.permanent, url).toBe(true);
      expect(err!.message, url).toMatch(/non-public address/);
    }
  });

  it('when the host is a public address, then it passes (no request is made by the check)', async () => {
    for (const url of ['http://93.184.215.14/h', 'https://8.8.8.8/h', 'http://[2606:4700:4700::1111]/h'])
      expect(await refusal(url), url).toBeUndefined();
  });

  it('when the host does not resolve, then it is an ordinary failure, retried', async () => {
    const err = await refusal('http://no-such-host.invalid/h');
    expect(err?.permanent).toBe(false);
    expect(err?.message).toMatch(/cannot resolve no-such-host\.invalid/);
  });

  it("when NODE_ENV=production and nothing is set, then customers' private targets are denied; otherwise allowed unless set", () => {
    expect(
      loadConfig({ NODE_ENV: 'production', API_KEYS: 'operator:k-0123456789abcdef' }).WEBHOOK_PRIVATE_TARGETS,
    ).toBe('deny');
    expect(loadConfig({}).WEBHOOK_PRIVATE_TARGETS).toBe('allow');
    expect(loadConfig({ WEBHOOK_PRIVATE_TARGETS: 'deny' }).WEBHOOK_PRIVATE_TARGETS).toBe('deny');
    expect(() => loadConfig({ WEBHOOK_PRIVATE_TARGETS: 'maybe' })).toThrow(/WEBHOOK_PRIVATE_TARGETS/);
  });
});
