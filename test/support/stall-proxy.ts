/** A TCP proxy between the service and its database that can stall all traffic on demand (a network partition). */
import { connect } from "node:net";

export interface StallProxy {
  /** Where the service should connect instead of the database. */
  port: number;
  /**
   * From now on nothing gets through, in either direction, and new connections are accepted but not forwarded:
   * the database looks alive at the TCP level and never answers (a partition, a frozen host).
   */
  stall(): void;
  /** Everything held is delivered and traffic flows again. */
  resume(): void;
  close(): Promise<void>;
}

/** A TCP proxy on 127.0.0.1 in front of `targetHost:targetPort` that can stall all traffic on demand. */
export async function startStallProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<StallProxy> {
  const { createServer } = await import("node:net");
  type Socket = import("node:net").Socket;
  let stalled = false;
  const pairs = new Set<{ client: Socket; upstream?: Socket }>();
  const waiting: (() => void)[] = [];

  const link = (pair: { client: Socket; upstream?: Socket }) => {
    const upstream = connect({ host: targetHost, port: targetPort });
    pair.upstream = upstream;
    pair.client.pipe(upstream);
    upstream.pipe(pair.client);
    upstream.on("error", () => pair.client.destroy());
    upstream.on("close", () => pair.client.destroy());
    if (stalled) upstream.pause();
  };
  const server = createServer((client) => {
    const pair: { client: Socket; upstream?: Socket } = { client };
    pairs.add(pair);
    client.on("error", () => pair.upstream?.destroy());
    client.on("close", () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (stalled) {
      client.pause();
      waiting.push(() => link(pair));
    } else link(pair);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    stall() {
      stalled = true;
      for (const { client, upstream } of pairs) {
        // Unpipe so that nothing is read while stalled (pipe would resume a paused source on drain).
        client.unpipe();
        upstream?.unpipe();
        client.pause();
        upstream?.pause();
      }
    },
    resume() {
      stalled = false;
      for (const pair of pairs) {
        if (!pair.upstream) continue;
        pair.client.pipe(pair.upstream);
        pair.upstream.pipe(pair.client);
        pair.client.resume();
        pair.upstream.resume();
      }
      for (const start of waiting.splice(0)) start();
    },
    close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream?.destroy();
      }
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
