import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../server/config.js';

describe('hub configuration (environment, read once)', () => {
  it('starts with embedded defaults: PGlite, port 8080, media on loopback with a stream budget', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 8080, databaseUrl: undefined, loadDemoData: true, roomGraceSeconds: 60 });
    expect(config.sfu).toEqual({ listenIp: '127.0.0.1', rtcMinPort: 40000, rtcMaxPort: 49999, maxStreamsPerWorker: 1000 });
  });

  it('reads the media settings of a server behind NAT', () => {
    const config = loadConfig({ RTC_LISTEN_IP: '0.0.0.0', RTC_ANNOUNCED_IP: '203.0.113.10', RTC_MIN_PORT: '40000', RTC_MAX_PORT: '40100', SFU_WORKERS: '4', SFU_MAX_STREAMS_PER_WORKER: '800', ROOM_GRACE_SECONDS: '30', TELEASSISTANCE_ORGANIZATION: 'org-samu-06' });
    expect(config.sfu).toEqual({ workers: 4, maxStreamsPerWorker: 800, listenIp: '0.0.0.0', announcedIp: '203.0.113.10', rtcMinPort: 40000, rtcMaxPort: 40100 });
    expect(config.roomGraceSeconds).toBe(30);
    expect(config.teleassistanceOrganization).toBe('org-samu-06');
  });

  it('refuses a bad setting, naming the variable', () => {
    expect(() => loadConfig({ RTC_LISTEN_IP: 'localhost' })).toThrow(/RTC_LISTEN_IP/);
    expect(() => loadConfig({ RTC_MIN_PORT: '45000', RTC_MAX_PORT: '44000' })).toThrow(/RTC_MIN_PORT: RTC_MIN_PORT must not be above RTC_MAX_PORT/);
    expect(() => loadConfig({ SFU_MAX_STREAMS_PER_WORKER: '0' })).toThrow(/SFU_MAX_STREAMS_PER_WORKER/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/);
    expect(() => loadConfig({ CORS_ORIGINS: 'not an origin' })).toThrow(/CORS_ORIGINS/);
  });
});
