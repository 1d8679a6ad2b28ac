import { useEffect, useRef } from 'react';
import type { VitalsMonitor } from './vitals.js';

/** Seconds of ECG across the strip, and the vertical span (µV) drawn. */
const SECONDS = 5;
const SPAN_UV = 3000;
/** Where 0 µV sits, from the top (a QRS goes up much further than it goes down). */
const BASELINE = 0.62;

/**
 * The last seconds of the lead as a scrolling strip on ECG paper (25 mm/s: a big square is
 * 0.2 s and 500 µV), newest on the right, redrawn every animation frame from the monitor.
 */
export function EcgStrip({ monitor, label }: { monitor: VitalsMonitor; label: string }) {
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const canvas = ref.current;
    const ctx = canvas?.getContext('2d');
    if (!canvas || !ctx) return;
    let frame = 0;
    let drawnTotal = -1;
    const draw = () => {
      frame = requestAnimationFrame(draw);
      if (monitor.ecgTotal === drawnTotal) return;
      drawnTotal = monitor.ecgTotal;
      const { width, height } = canvas;
      ctx.fillStyle = '#fff8f6';
      ctx.fillRect(0, 0, width, height);
      ctx.strokeStyle = '#f3c6bd';
      ctx.lineWidth = 1;
      for (let s = 0; s <= SECONDS; s += 0.2) {
        const x = Math.round((s / SECONDS) * width) + 0.5;
        ctx.beginPath();
        ctx.moveTo(x, 0);
        ctx.lineTo(x, height);
        ctx.stroke();
      }
      for (let uv = -Math.floor((1 - BASELINE) * SPAN_UV / 500) * 500; uv <= BASELINE * SPAN_UV; uv += 500) {
        const y = Math.round(height * BASELINE - (uv / SPAN_UV) * height) + 0.5;
        ctx.beginPath();
        ctx.moveTo(0, y);
        ctx.lineTo(width, y);
        ctx.stroke();
      }
      const strip = monitor.recentEcg(SECONDS);
      if (!strip) return;
      const perSecond = width / SECONDS;
      const step = perSecond / strip.rateHz;
      const x0 = width - strip.samples.length * step;
      ctx.strokeStyle = '#1b1b1b';
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      strip.samples.forEach((uv, i) => {
        const x = x0 + i * step;
        const y = height * BASELINE - (uv / SPAN_UV) * height;
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    };
    draw();
    return () => cancelAnimationFrame(frame);
  }, [monitor]);
  return <canvas ref={ref} className="ecg" width={900} height={220} role="img" aria-label={label} />;
}
