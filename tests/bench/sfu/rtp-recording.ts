import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

/** The Debian command that installs the encoder this benchmark feeds mediasoup with. */
export const FFMPEG_INSTALL_COMMAND = 'apt-get install -y --no-install-recommends ffmpeg';

export const VIDEO_PAYLOAD_TYPE = 101;
export const AUDIO_PAYLOAD_TYPE = 100;

export interface RecordedPacket {
  /** When to send it, in seconds from the start of the loop (from its RTP timestamp). */
  readonly at: number;
  readonly data: Buffer;
  /** RTP timestamp relative to the first packet of the recording. */
  readonly tsOffset: number;
  /** Offset of a VP8 picture id in `data` (-1 without one), its width in bits and value. */
  readonly pictureIdOffset: number;
  readonly pictureIdBits: 7 | 15;
  readonly pictureId: number;
}

/** A short RTP stream held in memory and replayed in a loop, so the encoder runs once per benchmark. */
export interface RtpRecording {
  readonly kind: 'audio' | 'video';
  readonly clockRate: number;
  readonly packets: readonly RecordedPacket[];
  /** Length of one loop in seconds: the last packet's time plus one frame. */
  readonly periodSeconds: number;
  /** RTP timestamp advance of one loop. */
  readonly periodTicks: number;
  /** VP8 frames (picture ids) per loop; 0 for audio. */
  readonly framesPerPeriod: number;
  readonly bitsPerSecond: number;
  readonly packetsPerSecond: number;
}

export interface Recordings {
  video: RtpRecording;
  audio: RtpRecording;
  /** The ffmpeg command line, for the report. */
  command: string;
}

export class FfmpegMissingError extends Error {
  constructor() {
    super(
      `ffmpeg is not installed; the SFU capacity benchmark encodes its VP8 and Opus streams with it.\n` +
        `Install it with:\n\n  ${FFMPEG_INSTALL_COMMAND}\n`,
    );
    this.name = 'FfmpegMissingError';
  }
}

/** ffmpeg children still running, killed on exit or SIGINT by whoever calls killEncoders(). */
const encoders = new Set<ChildProcess>();

export function killEncoders(): void {
  for (const child of encoders) child.kill('SIGKILL');
  encoders.clear();
}

async function ffmpegAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = spawn('ffmpeg', ['-hide_banner', '-version'], { stdio: 'ignore' });
    probe.once('error', () => resolve(false));
    probe.once('exit', (code) => resolve(code === 0));
  });
}

async function openCapture(): Promise<{ socket: dgram.Socket; port: number; packets: Buffer[] }> {
  // Recording runs faster than real time: a large buffer keeps the kernel from dropping a burst.
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
  const packets: Buffer[] = [];
  socket.on('message', (message) => packets.push(message));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: (socket.address() as AddressInfo).port, packets };
}

/**
 * Encodes `seconds` of a moving test pattern (VP8, ~750 kbit/s, 30 fps, a key frame every 2 s)
 * and a tone (Opus 32 kbit/s, 20 ms frames) with ffmpeg, and keeps the RTP packets in memory.
 * ffmpeg reads its synthetic input at 4× real time; the replay paces packets by their RTP
 * timestamps, so the recording speed does not matter.
 */
export async function recordWithFfmpeg(seconds: number, videoBitrate = '750k'): Promise<Recordings> {
  if (!(await ffmpegAvailable())) throw new FfmpegMissingError();
  const video = await openCapture();
  const audio = await openCapture();
  const args = [
    '-hide_banner', '-loglevel', 'error', '-nostdin',
    '-readrate', '4', '-t', String(seconds), '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30',
    '-readrate', '4', '-t', String(seconds), '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-map', '0:v', '-c:v', 'libvpx', '-b:v', videoBitrate, '-deadline', 'realtime', '-cpu-used', '8', '-g', '60',
    '-payload_type', String(VIDEO_PAYLOAD_TYPE), '-ssrc', '1111', '-f', 'rtp',
    `rtp://127.0.0.1:${video.port}?pkt_size=1200`,
    '-map', '1:a', '-c:a', 'libopus', '-b:a', '32k', '-ac', '2',
    '-payload_type', String(AUDIO_PAYLOAD_TYPE), '-ssrc', '2222', '-f', 'rtp',
    `rtp://127.0.0.1:${audio.port}?pkt_size=1200`,
  ];
  try {
    await new Promise<void>((resolve, reject) => {
      // stdout carries the SDP ffmpeg prints for RTP outputs: not needed.
      const child = spawn('ffmpeg', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      encoders.add(child);
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('error', (error) => {
        encoders.delete(child);
        reject(error);
      });
      child.once('exit', (code, signal) => {
        encoders.delete(child);
        if (code === 0) resolve();
        else reject(new Error(`ffmpeg exited with ${code ?? signal}: ${stderr.trim()}`));
      });
    });
    // The last packets may still be in the socket buffers.
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    video.socket.close();
    audio.socket.close();
  }
  return {
    video: toRecording('video', 90000, 3000, video.packets),
    audio: toRecording('audio', 48000, 960, audio.packets),
    command: `ffmpeg ${args.map((arg) => (/[\s?]/.test(arg) ? `'${arg}'` : arg)).join(' ')}`,
  };
}

function payloadOffset(data: Buffer): number {
  const first = data[0] ?? 0;
  let offset = 12 + 4 * (first & 0x0f);
  if (first & 0x10) offset += 4 + 4 * data.readUInt16BE(offset + 2);
  return offset;
}

/** Where the VP8 payload descriptor (RFC 7741 §4.2) keeps its picture id, if it has one. */
function vp8PictureId(data: Buffer): { offset: number; bits: 7 | 15; value: number } | undefined {
  const start = payloadOffset(data);
  const descriptor = data[start] ?? 0;
  if (!(descriptor & 0x80)) return undefined; // no extension byte
  const extension = data[start + 1] ?? 0;
  if (!(extension & 0x80)) return undefined; // no picture id
  const high = data[start + 2] ?? 0;
  if (high & 0x80) return { offset: start + 2, bits: 15, value: ((high & 0x7f) << 8) | (data[start + 3] ?? 0) };
  return { offset: start + 2, bits: 7, value: high };
}

function toRecording(kind: 'audio' | 'video', clockRate: number, frameTicks: number, raw: Buffer[]): RtpRecording {
  const packets = raw.filter((data) => data.length > 12 && (data[0] ?? 0) >> 6 === 2);
  const first = packets[0];
  if (!first) throw new Error(`ffmpeg produced no ${kind} RTP packets`);
  const firstTs = first.readUInt32BE(4);
  const recorded: RecordedPacket[] = [];
  const frames = new Set<number>();
  let bytes = 0;
  for (const data of packets) {
    const tsOffset = (data.readUInt32BE(4) - firstTs) >>> 0;
    const pictureId = kind === 'video' ? vp8PictureId(data) : undefined;
    frames.add(tsOffset);
    bytes += data.length;
    recorded.push({
      at: tsOffset / clockRate,
      data,
      tsOffset,
      pictureIdOffset: pictureId?.offset ?? -1,
      pictureIdBits: pictureId?.bits ?? 15,
      pictureId: pictureId?.value ?? 0,
    });
  }
  const last = recorded[recorded.length - 1] ?? recorded[0]!;
  const periodTicks = last.tsOffset + frameTicks;
  const periodSeconds = periodTicks / clockRate;
  return {
    kind,
    clockRate,
    packets: recorded,
    periodSeconds,
    periodTicks,
    framesPerPeriod: kind === 'video' ? frames.size : 0,
    bitsPerSecond: (bytes * 8) / periodSeconds,
    packetsPerSecond: recorded.length / periodSeconds,
  };
}
