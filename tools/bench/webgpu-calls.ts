// Record the WebGPU calls that a span of work makes on a device (command encoders, compute passes,
// buffer copies and clears, queue writes and submits), compare two recordings, and replay one
// raw: the same calls on the same objects, with no tfjs and no kernel JavaScript in between.
// step-replay.ts uses it to measure what a SiT step's host part would cost if only its WebGPU
// calls were left: the floor under the step's JavaScript, and what capturing a whole step once
// and replaying it (as CUDA graphs do) would leave to the host.
//
// The hooks are installed on the prototypes of the device's own encoder, pass and queue objects
// (Dawn's classes in Node, the browser's elsewhere) and record only while a recording is open.

/** One recorded call: its kind, the recording's id of the object it was made on, its arguments. */
export type WebgpuCall =
  | { kind: "encoder"; id: number }
  | { kind: "pass"; encoder: number; id: number }
  | { kind: "copy"; encoder: number; args: unknown[] }
  | { kind: "clear"; encoder: number; args: unknown[] }
  | { kind: "finish"; encoder: number; id: number }
  | { kind: "setPipeline"; pass: number; pipeline: unknown }
  | { kind: "setBindGroup"; pass: number; index: number; group: unknown }
  | { kind: "dispatch"; pass: number; workgroups: number[] }
  | { kind: "end"; pass: number }
  | { kind: "write"; buffer: GpuBufferLike; offset: number; bytes: Uint8Array }
  | { kind: "submit"; buffers: number[] }
  | { kind: "createBuffer" | "createBindGroup" };

interface GpuBufferLike {
  size: number;
  usage: number;
}

interface DeviceLike {
  queue: object;
  createCommandEncoder(): object;
}

type Method = (this: unknown, ...args: unknown[]) => unknown;
type Proto = Record<string, Method>;

/** WebGPU's `GPUBufferUsage.MAP_READ`. */
const MAP_READ = 1;

/** A device's recorder: open, close, replay. */
export interface WebgpuCallRecorder {
  /** Start recording (throws if one is open). */
  start(): void;
  /** Stop, and return the calls made since `start`. */
  stop(): WebgpuCall[];
  /**
   * Make `calls` again on the device, each on the objects its recording's ids now stand for
   * (new encoders and passes), leaving out copies into buffers that the host maps to read (a
   * read's staging buffer may be mapped or gone by now). Nothing is recorded meanwhile.
   */
  replay(calls: WebgpuCall[]): void;
  /** Put the prototypes' methods back. */
  uninstall(): void;
}

/** Install the hooks on `device`'s classes (once per device at a time). */
export function recordWebgpuCalls(device: DeviceLike): WebgpuCallRecorder {
  const encoder = device.createCommandEncoder() as { beginComputePass(): object; finish(): object };
  const pass = encoder.beginComputePass() as { end(): void };
  pass.end();
  encoder.finish();
  const protos: Record<"device" | "encoder" | "pass" | "queue", Proto> = {
    device: Object.getPrototypeOf(device),
    encoder: Object.getPrototypeOf(encoder),
    pass: Object.getPrototypeOf(pass),
    queue: Object.getPrototypeOf(device.queue),
  };
  let calls: WebgpuCall[] | null = null;
  let ids = new Map<object, number>();
  const idOf = (o: unknown): number => {
    let id = ids.get(o as object);
    if (id === undefined) {
      id = ids.size;
      ids.set(o as object, id);
    }
    return id;
  };
  const original = new Map<string, Method>();
  const hook = (
    where: keyof typeof protos,
    name: string,
    record: (self: unknown, args: unknown[], made: unknown) => WebgpuCall,
  ) => {
    const f = protos[where][name];
    if (typeof f !== "function") throw new Error(`webgpu-calls: no ${where}.${name} to record`);
    original.set(`${where}.${name}`, f);
    protos[where][name] = function (this: unknown, ...args: unknown[]) {
      const made = f.apply(this, args);
      calls?.push(record(this, args, made));
      return made;
    };
  };
  hook("device", "createCommandEncoder", (_s, _a, made) => ({ kind: "encoder", id: idOf(made) }));
  hook("device", "createBuffer", () => ({ kind: "createBuffer" }));
  hook("device", "createBindGroup", () => ({ kind: "createBindGroup" }));
  hook("encoder", "beginComputePass", (self, _a, made) => ({
    kind: "pass",
    encoder: idOf(self),
    id: idOf(made),
  }));
  hook("encoder", "copyBufferToBuffer", (self, args) => ({
    kind: "copy",
    encoder: idOf(self),
    args,
  }));
  hook("encoder", "clearBuffer", (self, args) => ({ kind: "clear", encoder: idOf(self), args }));
  hook("encoder", "finish", (self, _a, made) => ({
    kind: "finish",
    encoder: idOf(self),
    id: idOf(made),
  }));
  hook("pass", "setPipeline", (self, args) => ({
    kind: "setPipeline",
    pass: idOf(self),
    pipeline: args[0],
  }));
  hook("pass", "setBindGroup", (self, args) => ({
    kind: "setBindGroup",
    pass: idOf(self),
    index: args[0] as number,
    group: args[1],
  }));
  hook("pass", "dispatchWorkgroups", (self, args) => ({
    kind: "dispatch",
    pass: idOf(self),
    workgroups: (args as number[]).map((n) => n ?? 1),
  }));
  hook("pass", "end", (self) => ({ kind: "end", pass: idOf(self) }));
  hook("queue", "writeBuffer", (_s, args) => {
    // The bytes as written now (the caller may reuse its array): offset and size in elements of
    // a typed array, bytes of an ArrayBuffer, as WebGPU reads them.
    const [buffer, offset, data, dataOffset = 0, size] = args as [
      GpuBufferLike,
      number,
      ArrayBuffer | ArrayBufferView,
      number | undefined,
      number | undefined,
    ];
    const view = ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);
    const unit = ArrayBuffer.isView(data)
      ? ((data as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1)
      : 1;
    const start = dataOffset * unit;
    const end = size === undefined ? view.byteLength : start + size * unit;
    return { kind: "write", buffer, offset, bytes: view.slice(start, end) };
  });
  hook("queue", "submit", (_s, args) => ({
    kind: "submit",
    buffers: (args[0] as unknown[]).map(idOf),
  }));
  const call = (key: string, self: unknown, ...args: unknown[]) =>
    (original.get(key) as Method).apply(self, args);
  return {
    start() {
      if (calls) throw new Error("webgpu-calls: a recording is open already");
      calls = [];
      ids = new Map();
    },
    stop() {
      if (!calls) throw new Error("webgpu-calls: no recording is open");
      const out = calls;
      calls = null;
      return out;
    },
    replay(recorded) {
      const made = new Map<number, unknown>();
      for (const c of recorded) {
        switch (c.kind) {
          case "encoder":
            made.set(c.id, call("device.createCommandEncoder", device));
            break;
          case "pass":
            made.set(c.id, call("encoder.beginComputePass", made.get(c.encoder)));
            break;
          case "copy":
            if (((c.args[2] as GpuBufferLike).usage & MAP_READ) === 0)
              call("encoder.copyBufferToBuffer", made.get(c.encoder), ...c.args);
            break;
          case "clear":
            call("encoder.clearBuffer", made.get(c.encoder), ...c.args);
            break;
          case "finish":
            made.set(c.id, call("encoder.finish", made.get(c.encoder)));
            break;
          case "setPipeline":
            call("pass.setPipeline", made.get(c.pass), c.pipeline);
            break;
          case "setBindGroup":
            call("pass.setBindGroup", made.get(c.pass), c.index, c.group);
            break;
          case "dispatch":
            call("pass.dispatchWorkgroups", made.get(c.pass), ...c.workgroups);
            break;
          case "end":
            call("pass.end", made.get(c.pass));
            break;
          case "write":
            call("queue.writeBuffer", device.queue, c.buffer, c.offset, c.bytes);
            break;
          case "submit":
            call(
              "queue.submit",
              device.queue,
              c.buffers.map((id) => made.get(id)),
            );
            break;
          default:
            // Objects made during the recording (buffers, bind groups) stay made: the replay
            // binds the recorded ones.
            break;
        }
      }
    },
    uninstall() {
      for (const [key, f] of original) {
        const [where, name] = key.split(".") as [keyof typeof protos, string];
        protos[where][name] = f;
      }
      original.clear();
    },
  };
}

/** How two recordings differ: see {@link compareWebgpuCalls}. */
export interface WebgpuCallsComparison {
  /** Same calls, in order, on the same pipelines, bind groups and buffers, with the same sizes. */
  sameCalls: boolean;
  /** The first call that differs (index and why), when not `sameCalls`. */
  firstDifference?: { index: number; why: string };
  /**
   * Calls of the same kind, in the same place, made on other objects or with other sizes (a bind
   * group over other buffers, say); counted while the kinds of the two recordings' calls agree.
   */
  differingCalls: number;
  /** The writes (indices among the writes) whose bytes differ: the work's per-run inputs. */
  varyingWrites: number[];
  /** Their bytes in all. */
  varyingBytes: number;
}

const same = (a: unknown[], b: unknown[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Compare two recordings of the same work: whether they make the same calls on the same objects
 * (so that one could stand for the other, given the other's written bytes), and which writes carry
 * bytes that differ between them.
 */
export function compareWebgpuCalls(a: WebgpuCall[], b: WebgpuCall[]): WebgpuCallsComparison {
  const varyingWrites: number[] = [];
  let varyingBytes = 0;
  let writes = 0;
  let firstDifference: { index: number; why: string } | undefined;
  let differingCalls = 0;
  const result = (): WebgpuCallsComparison => ({
    sameCalls: firstDifference === undefined,
    ...(firstDifference ? { firstDifference } : {}),
    differingCalls,
    varyingWrites,
    varyingBytes,
  });
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    const note = (why: string) => {
      differingCalls++;
      firstDifference ??= { index: i, why };
    };
    if (!x || !y) {
      firstDifference ??= { index: i, why: `one recording ends at call ${i}` };
      return result();
    }
    if (x.kind !== y.kind) {
      firstDifference ??= { index: i, why: `${x.kind} against ${y.kind}` };
      return result();
    }
    if (x.kind === "write" && y.kind === "write") {
      if (x.buffer !== y.buffer || x.offset !== y.offset || x.bytes.length !== y.bytes.length) {
        note("a write to another buffer, offset or size");
        writes++;
        continue;
      }
      if (!x.bytes.every((v, k) => v === y.bytes[k])) {
        varyingWrites.push(writes);
        varyingBytes += x.bytes.length;
      }
      writes++;
      continue;
    }
    const fields = (c: WebgpuCall): unknown[] => {
      switch (c.kind) {
        case "copy": {
          // A read's staging buffer comes from a pool: which one is no part of the work.
          const [src, srcOffset, dst, dstOffset, size] = c.args;
          const read = ((dst as GpuBufferLike).usage & MAP_READ) !== 0;
          return [c.encoder, src, srcOffset, read ? "read" : dst, dstOffset, size];
        }
        case "clear":
          return [c.encoder, ...c.args];
        case "setPipeline":
          return [c.pass, c.pipeline];
        case "setBindGroup":
          return [c.pass, c.index, c.group];
        case "dispatch":
          return [c.pass, ...c.workgroups];
        case "submit":
          return c.buffers;
        case "pass":
        case "finish":
          return [c.encoder, c.id];
        case "end":
          return [c.pass];
        case "encoder":
          return [c.id];
        default:
          return [];
      }
    };
    if (!same(fields(x), fields(y))) note(`${x.kind} on other objects or sizes`);
  }
  return result();
}

/** How many calls of each kind, and the bytes written. */
export function countWebgpuCalls(calls: WebgpuCall[]): Record<string, number> {
  const counts: Record<string, number> = { writeBytes: 0 };
  for (const c of calls) {
    counts[c.kind] = (counts[c.kind] ?? 0) + 1;
    if (c.kind === "write") counts.writeBytes += c.bytes.length;
  }
  return counts;
}
