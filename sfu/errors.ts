/**
 * Stable codes a signaling layer can branch on (and map to its own statuses: sfu/ knows nothing
 * of HTTP or socket.io).
 */
export type SfuErrorCode =
  /** An argument is missing, of the wrong type, or refused by mediasoup's own checks. */
  | 'invalid-argument'
  /** The operation does not apply to this object now (wrong transport type, already connected...). */
  | 'invalid-state'
  /** A per-peer limit (number of transports) is reached. */
  | 'limit-reached'
  /** The peer's device cannot receive this producer (no common codec). */
  | 'cannot-consume'
  | 'room-exists'
  | 'room-not-found'
  | 'room-closed'
  /** The room lost its media server (worker died) and has not been rebuilt yet. */
  | 'room-interrupted'
  | 'peer-exists'
  | 'peer-not-found'
  | 'peer-closed'
  | 'transport-not-found'
  | 'producer-not-found'
  | 'consumer-not-found'
  | 'data-producer-not-found'
  | 'data-consumer-not-found'
  /** The id names an object of another peer: a peer only ever touches its own. */
  | 'not-owner'
  /** No mediasoup worker is left to host a router. */
  | 'no-worker'
  /** mediasoup failed for a reason the caller did not cause (a worker channel closed...). */
  | 'media-error';

/**
 * The one error type of sfu/: a code, a message a person can act on, and the argument at fault
 * when there is one (`transportId`, `rtpParameters`, `appData.source`...).
 */
export class SfuError extends Error {
  constructor(
    readonly code: SfuErrorCode,
    message: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SfuError';
  }
}

/**
 * Converts what a mediasoup call threw. mediasoup reports bad parameters as TypeError (its ortc
 * checks and the worker's own validation both do), a call at the wrong time as InvalidStateError,
 * and a missing feature as UnsupportedError.
 */
export function fromMediasoup(error: unknown, field: string, doing: string): SfuError {
  if (error instanceof SfuError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : '';
  if (error instanceof TypeError) {
    return new SfuError('invalid-argument', `${field} was refused while ${doing}: ${message}`, field, { cause: error });
  }
  if (name === 'UnsupportedError') {
    return new SfuError('invalid-argument', `${field} is not supported while ${doing}: ${message}`, field, { cause: error });
  }
  if (/request timeout/i.test(message)) {
    // The worker did not answer in time (mediasoup waits 15 s): it is saturated, not refusing.
    return new SfuError('media-error', `the media server is overloaded and did not answer while ${doing}; try again`, undefined, { cause: error });
  }
  if (name === 'InvalidStateError') {
    return new SfuError('media-error', `mediasoup could not finish ${doing}: ${message}`, undefined, { cause: error });
  }
  return new SfuError('invalid-state', `mediasoup refused ${doing}: ${message}`, undefined, { cause: error });
}
