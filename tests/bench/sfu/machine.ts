import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

let clockTicks: number | undefined;

/** Kernel clock ticks per second (USER_HZ), the unit of utime and stime in /proc/<pid>/stat. */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) / ticksPerSecond();
}

/** CPU seconds this Node.js process has used (relay, sinks, signaling objects). */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

export interface UdpCounters {
  inErrors: number;
  rcvbufErrors: number;
  sndbufErrors: number;
}

/** Machine-wide UDP drop counters (/proc/net/snmp): datagrams the kernel threw away for lack of buffer. */
export function udpCounters(): UdpCounters {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((line) => line.startsWith('Udp:'));
  const names = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const read = (name: string) => Number(values[names.indexOf(name)] ?? 0);
  return { inErrors: read('InErrors'), rcvbufErrors: read('RcvbufErrors'), sndbufErrors: read('SndbufErrors') };
}

export function describeMachine(): string {
  let model = os.cpus()[0]?.model ?? 'unknown CPU';
  try {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? model;
  } catch {
    // Not Linux: os.cpus() is good enough.
  }
  const memory = (os.totalmem() / 2 ** 30).toFixed(1);
  return `${os.cpus().length} cores, ${model}, ${memory} GiB, Linux ${os.release()}, Node ${process.version}`;
}

/** CPU seconds all processes of the machine have used (from /proc/stat), to spot other load during a window. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = line
    .trim()
    .split(/\s+/)
    .map(Number);
  return (user + nice + system + irq + softirq) / ticksPerSecond();
}
