import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/platform/local-services';

describe('redactUrl (the start-up line)', () => {
  it('when a URL carries a password in its user part or in a query parameter, then the line shows *** for each and keeps the rest', () => {
    expect(redactUrl('postgres://app:s3cret@db:5432/orderflow')).toBe('postgres://app:***@db:5432/orderflow');
    expect(redactUrl('postgres://app@db:5432/orderflow?password=Leak123&sslmode=require')).toBe(
      'postgres://app@db:5432/orderflow?password=***&sslmode=require',
    );
    expect(redactUrl('postgres://db/x?sslpassword=a&sslkey=/k&application_name=of')).toBe(
      'postgres://db/x?sslpassword=***&sslkey=***&application_name=of',
    );
    expect(redactUrl('rediss://user:pw@cache:6380/2')).toBe('rediss://user:***@cache:6380/2');
    expect(redactUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
    expect(redactUrl('not a url')).toBe('(unparsable URL)');
  });
});
