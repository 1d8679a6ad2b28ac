import { useEffect, useRef } from 'react';

/** A video element showing a stream; reports its first presented frame (requestVideoFrameCallback). */
export function VideoTile({
  stream,
  track,
  label,
  muted = true,
  mirrored = false,
  note,
  onFirstFrame,
  testId,
}: {
  stream?: MediaStream | undefined;
  track?: MediaStreamTrack | undefined;
  label: string;
  muted?: boolean;
  mirrored?: boolean;
  note?: string | undefined;
  onFirstFrame?: () => void;
  testId?: string;
}) {
  const ref = useRef<HTMLVideoElement>(null);
  useEffect(() => {
    const video = ref.current;
    if (!video) return;
    const source = stream ?? (track ? new MediaStream([track]) : null);
    video.srcObject = source;
    if (source) void video.play().catch(() => undefined);
    if (source && onFirstFrame && 'requestVideoFrameCallback' in video) {
      const handle = video.requestVideoFrameCallback(() => onFirstFrame());
      return () => video.cancelVideoFrameCallback(handle);
    }
    return undefined;
  }, [stream, track, onFirstFrame]);
  return (
    <figure className="tile" data-testid={testId}>
      <video ref={ref} autoPlay playsInline muted={muted} className={mirrored ? 'mirrored' : undefined} />
      <figcaption>
        {label}
        {note && <span className="tile-note"> · {note}</span>}
      </figcaption>
    </figure>
  );
}

/** Plays a remote audio track (hidden element). */
export function AudioSink({ track }: { track: MediaStreamTrack }) {
  const ref = useRef<HTMLAudioElement>(null);
  useEffect(() => {
    const audio = ref.current;
    if (!audio) return;
    audio.srcObject = new MediaStream([track]);
    void audio.play().catch(() => undefined);
  }, [track]);
  return <audio ref={ref} autoPlay />;
}
