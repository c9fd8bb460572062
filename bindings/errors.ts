/**
 * The one error class netpd throws. `code` is stable and meant for programs; the
 * message names the offending input for people.
 */
export type NetpdErrorCode =
  | 'EBADPROG'   // a classic BPF program broke a validation rule or could not be parsed
  | 'EBADDESC'   // a description that is malformed, or of the wrong kind for the dispatcher's filter type
  | 'EDUPDESC'   // a description equal to one already registered (DPF)
  | 'EBADID'     // an owner id that is unknown or was already unregistered
  | 'EFULL'      // a fixed-size table or region (owners, program memory) is full
  | 'ENOSLOT'    // the arena has no free slot where one was required
  | 'EPCAP'      // a capture file is corrupt or truncated
  | 'EFILTER'    // a pcap-filter expression could not be compiled
  | 'EINVAL'     // an argument is out of range or of the wrong type
  | 'EPERM'      // missing privilege
  | 'ENODEV'     // no such network interface
  | 'ENETDOWN'   // a network interface is down, or went down or away while in use
  | 'ENOTSUP'    // not supported on this system
  | 'EOWNER'     // an owner's netio or a source's onBurst callback threw (what it threw is err.cause)
  | 'ECLOSED'    // a method was called on a dispatcher, reader or source after close()
  | 'ENOENT'     // a file to read, or the directory of a file to write, does not exist
  | 'EISDIR'     // a path names a directory where a file was expected
  | 'EACCES'     // the operating system refused access to a file (EACCES or EPERM)
  | 'EIO';       // an operating-system I/O error

export interface NetpdErrorOptions {
  cause?: unknown;
  /** Where in the input the problem is: a byte offset, an instruction index, a column. */
  details?: Readonly<Record<string, number | string>>;
}

export class NetpdError extends Error {
  readonly code: NetpdErrorCode;
  readonly details: Readonly<Record<string, number | string>>;
  constructor(code: NetpdErrorCode, message: string, options: NetpdErrorOptions = {}) {
    super(`${code}: ${message}`, { cause: options.cause });
    this.name = 'NetpdError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** The file system errors netpd names by their own code (any other is EIO). */
const FILE_ERRORS: Readonly<Record<string, readonly [NetpdErrorCode, string]>> = {
  ENOENT: ['ENOENT', 'no such file or directory'],
  EISDIR: ['EISDIR', 'it is a directory'],
  EACCES: ['EACCES', 'permission denied'],
  EPERM: ['EACCES', 'operation not permitted'],
};

/**
 * An operating-system error on the file `path` as a NetpdError naming it: ENOENT,
 * EISDIR, EACCES (EPERM too), else EIO. `doing` says what failed ("open", "create").
 */
export function fileError(cause: unknown, path: string, doing: string): NetpdError {
  const known = FILE_ERRORS[(cause as NodeJS.ErrnoException | null)?.code ?? ''];
  const [code, reason] = known ?? ['EIO', (cause as Error).message];
  return new NetpdError(code, `cannot ${doing} ${path}: ${reason}`, { cause, details: { path } });
}
