/**
 * HTTP on a raw socket, for what a well-behaved client never sends: bytes that are not valid in a request line,
 * a body slower or longer than declared, hundreds of pipelined requests. Responses are read off the wire and
 * split by their Content-Length.
 */
import { connect, type Socket } from "node:net";

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses every complete response in `data` (HTTP/1.1, Content-Length framed, as the service answers). */
export function parseResponses(data: Buffer): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  for (;;) {
    const end = data.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const head = data.subarray(at, end).toString("latin1").split("\r\n");
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? "")?.[1] ?? 0);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(":");
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const length = Number(headers["content-length"] ?? 0);
    if (data.length < end + 4 + length) break;
    out.push({ status, headers, body: data.subarray(end + 4, end + 4 + length).toString("utf8") });
    at = end + 4 + length;
  }
  return out;
}

export interface RawConnection {
  socket: Socket;
  /** Everything received so far. */
  received(): Buffer;
  responses(): RawResponse[];
  /** Resolves when the server has closed the connection (or `timeoutMs` passed: then `closed` is false). */
  closed(timeoutMs: number): Promise<boolean>;
  /** Resolves once `n` complete responses arrived, or rejects after `timeoutMs`. */
  waitForResponses(n: number, timeoutMs: number): Promise<RawResponse[]>;
  write(data: string | Buffer): Promise<void>;
  destroy(): void;
}

export function rawConnect(port: number, host = "127.0.0.1"): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    const chunks: Buffer[] = [];
    let isClosed = false;
    const watchers = new Set<() => void>();
    socket.on("data", (c: Buffer) => {
      chunks.push(c);
      for (const w of [...watchers]) w();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      isClosed = true;
      for (const w of [...watchers]) w();
    });
    const received = () => Buffer.concat(chunks);
    const waitUntil = (ok: () => boolean, timeoutMs: number) =>
      new Promise<boolean>((done) => {
        const check = () => {
          if (!ok()) return;
          finish(true);
        };
        const finish = (value: boolean) => {
          clearTimeout(timer);
          watchers.delete(check);
          done(value);
        };
        const timer = setTimeout(() => finish(false), timeoutMs);
        watchers.add(check);
        check();
      });
    socket.once("connect", () =>
      resolve({
        socket,
        received,
        responses: () => parseResponses(received()),
        closed: (timeoutMs) => waitUntil(() => isClosed, timeoutMs),
        async waitForResponses(n, timeoutMs) {
          const ok = await waitUntil(() => parseResponses(received()).length >= n || isClosed, timeoutMs);
          const got = parseResponses(received());
          if (!ok || got.length < n) {
            throw new Error(
              `${got.length} of ${n} responses within ${timeoutMs} ms; got: ${received().toString().slice(0, 500)}`,
            );
          }
          return got;
        },
        write: (data) =>
          new Promise((done) => {
            if (socket.destroyed || !socket.writable) return done();
            socket.write(data, () => done());
          }),
        destroy: () => socket.destroy(),
      }),
    );
    socket.once("error", reject);
  });
}
