import { type GpuBuffer, type WebGpuInternals, noteRawDispatch } from "./flat-buffers";

// The WebGPU calls of a span of work, recorded so that step-capture.ts can make them again: the
// command encoders, compute passes, pipelines, bind groups and dispatches, buffer copies and
// clears, queue writes (their bytes copied) and submits. The hooks sit on the prototypes of the
// device's own classes (Dawn's in Node, the browser's elsewhere) only while a recording is open.
// A call a replay could not make again the same way (a render pass, a texture copy, a timestamp,
// an indirect dispatch, a map or a wait) marks the recording as not replayable, with the reason.

/** One recorded call. Encoders, passes and command buffers are numbered in recording order. */
export type RecordedCall =
  | { op: "encoder"; id: number }
  | { op: "pass"; encoder: number; id: number }
  | {
      op: "copy";
      encoder: number;
      src: GpuBuffer;
      srcOffset: number;
      dst: GpuBuffer;
      dstOffset: number;
      size: number;
    }
  | {
      op: "clear";
      encoder: number;
      buffer: GpuBuffer;
      offset: number | undefined;
      size: number | undefined;
    }
  | { op: "finish"; encoder: number; id: number }
  | { op: "pipeline"; pass: number; pipeline: unknown }
  | { op: "group"; pass: number; index: number; group: object }
  | { op: "dispatch"; pass: number; x: number; y: number; z: number }
  | { op: "end"; pass: number }
  | { op: "write"; buffer: GpuBuffer; offset: number; bytes: Uint8Array }
  | { op: "submit"; commandBuffers: number[] };

/** What a recording saw. */
export interface Recording {
  calls: RecordedCall[];
  /** The buffers of each bind group made while it was open (by their entries). */
  groupBuffers: Map<object, GpuBuffer[]>;
  /** Buffers destroyed while it was open. */
  destroyed: Set<GpuBuffer>;
  /** Why the calls cannot be made again, or null. */
  unreplayable: string | null;
}

type Method = (this: unknown, ...args: unknown[]) => unknown;
type Proto = Record<string, Method>;

/** The prototypes of a device's classes, found once per device. */
const protosOf = new WeakMap<
  object,
  Record<"device" | "queue" | "encoder" | "pass" | "buffer", Proto>
>();

function prototypes(b: WebGpuInternals) {
  let p = protosOf.get(b.device);
  if (!p) {
    const device = b.device as unknown as {
      createCommandEncoder(): { beginComputePass(): { end(): void }; finish(): unknown };
    };
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.end();
    encoder.finish(); // never submitted
    const buffer = b.device.createBuffer({ size: 4, usage: 0x08 }) as GpuBuffer & {
      destroy(): void;
    };
    buffer.destroy();
    const proto = (o: object) => Object.getPrototypeOf(o) as Proto;
    p = {
      device: proto(b.device),
      queue: proto(b.queue),
      encoder: proto(encoder),
      pass: proto(pass),
      buffer: proto(buffer),
    };
    protosOf.set(b.device, p);
  }
  return p;
}

/** Calls that a replay cannot make again as recorded, by class. */
const UNREPLAYABLE = {
  encoder: [
    "beginRenderPass",
    "copyBufferToTexture",
    "copyTextureToBuffer",
    "copyTextureToTexture",
    "resolveQuerySet",
    "writeTimestamp",
  ],
  pass: ["dispatchWorkgroupsIndirect", "writeTimestamp"],
  queue: ["writeTexture", "copyExternalImageToTexture", "onSubmittedWorkDone"],
  buffer: ["mapAsync"],
} as const;

let open: { uninstall: () => Recording } | null = null;

/**
 * Start recording `b`'s device's calls; the returned function stops and hands back what was
 * recorded. One recording at a time.
 */
export function startRecording(b: WebGpuInternals): () => Recording {
  if (open) throw new Error("@sit/kernels: a WebGPU call recording is already open");
  const protos = prototypes(b);
  const rec: Recording = {
    calls: [],
    groupBuffers: new Map(),
    destroyed: new Set(),
    unreplayable: null,
  };
  const ids = new Map<object, number>();
  const idOf = (o: object) => {
    let id = ids.get(o);
    if (id === undefined) {
      id = ids.size;
      ids.set(o, id);
    }
    return id;
  };
  /** Whether `o` was made while recording (an encoder or pass from before cannot be replayed). */
  const known = (o: object) => {
    const id = ids.get(o);
    if (id === undefined && !rec.unreplayable)
      rec.unreplayable = "a command encoder or pass opened before the recording was used in it";
    return id ?? -1;
  };
  const saved: [Proto, string, Method][] = [];
  const hook = (
    proto: Proto,
    name: string,
    after: (self: object, args: unknown[], result: unknown) => void,
  ) => {
    const original = proto[name];
    if (typeof original !== "function") return;
    saved.push([proto, name, original]);
    proto[name] = function (this: unknown, ...args: unknown[]) {
      const result = original.apply(this, args);
      after(this as object, args, result);
      return result;
    };
  };
  // The device's and queue's calls are hooked where they are looked up: on the object itself
  // when someone wrapped them there (a benchmark's counter), else on its class.
  const own = (o: object, proto: Proto, name: string) =>
    Object.hasOwn(o, name) ? (o as Proto) : proto;
  const push = (c: RecordedCall) => rec.calls.push(c);
  hook(own(b.device, protos.device, "createCommandEncoder"), "createCommandEncoder", (_s, _a, r) =>
    push({ op: "encoder", id: idOf(r as object) }),
  );
  hook(own(b.device, protos.device, "createBindGroup"), "createBindGroup", (_s, a, r) => {
    const entries = (a[0] as { entries: { resource: { buffer?: GpuBuffer } }[] }).entries;
    const buffers: GpuBuffer[] = [];
    for (const e of entries) if (e.resource?.buffer) buffers.push(e.resource.buffer);
    rec.groupBuffers.set(r as object, buffers);
  });
  hook(protos.encoder, "beginComputePass", (s, a, r) => {
    if ((a[0] as { timestampWrites?: unknown } | undefined)?.timestampWrites && !rec.unreplayable)
      rec.unreplayable = "a compute pass with timestamp writes";
    push({ op: "pass", encoder: known(s), id: idOf(r as object) });
  });
  hook(protos.encoder, "copyBufferToBuffer", (s, a) =>
    push({
      op: "copy",
      encoder: known(s),
      src: a[0] as GpuBuffer,
      srcOffset: a[1] as number,
      dst: a[2] as GpuBuffer,
      dstOffset: a[3] as number,
      size: a[4] as number,
    }),
  );
  hook(protos.encoder, "clearBuffer", (s, a) =>
    push({
      op: "clear",
      encoder: known(s),
      buffer: a[0] as GpuBuffer,
      offset: a[1] as number | undefined,
      size: a[2] as number | undefined,
    }),
  );
  hook(protos.encoder, "finish", (s, _a, r) =>
    push({ op: "finish", encoder: known(s), id: idOf(r as object) }),
  );
  hook(protos.pass, "setPipeline", (s, a) =>
    push({ op: "pipeline", pass: known(s), pipeline: a[0] }),
  );
  hook(protos.pass, "setBindGroup", (s, a) => {
    if (a.length > 2 && a[2] != null && (a[2] as ArrayLike<number>).length > 0 && !rec.unreplayable)
      rec.unreplayable = "a bind group with dynamic offsets";
    push({ op: "group", pass: known(s), index: a[0] as number, group: a[1] as object });
  });
  hook(protos.pass, "dispatchWorkgroups", (s, a) =>
    push({
      op: "dispatch",
      pass: known(s),
      x: a[0] as number,
      y: (a[1] as number) ?? 1,
      z: (a[2] as number) ?? 1,
    }),
  );
  hook(protos.pass, "end", (s) => push({ op: "end", pass: known(s) }));
  hook(own(b.queue, protos.queue, "writeBuffer"), "writeBuffer", (_s, a) => {
    const data = a[2] as ArrayBufferView | ArrayBuffer;
    const view = ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);
    const elementBytes = ArrayBuffer.isView(data)
      ? ((data as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1)
      : 1;
    const from = ((a[3] as number | undefined) ?? 0) * elementBytes;
    const size = a[4] === undefined ? view.byteLength - from : (a[4] as number) * elementBytes;
    push({
      op: "write",
      buffer: a[0] as GpuBuffer,
      offset: a[1] as number,
      bytes: view.slice(from, from + size),
    });
  });
  hook(own(b.queue, protos.queue, "submit"), "submit", (_s, a) =>
    push({ op: "submit", commandBuffers: (a[0] as object[]).map((c) => known(c)) }),
  );
  hook(protos.buffer, "destroy", (s) => rec.destroyed.add(s as GpuBuffer));
  for (const [cls, names] of Object.entries(UNREPLAYABLE))
    for (const name of names)
      hook(protos[cls as keyof typeof UNREPLAYABLE], name, () => {
        rec.unreplayable ??= `a call to ${name}`;
      });
  const stop = () => {
    for (const [proto, name, original] of saved.reverse()) proto[name] = original;
    open = null;
    return rec;
  };
  open = { uninstall: stop };
  return stop;
}

interface Encoder {
  beginComputePass(): Pass;
  copyBufferToBuffer(s: GpuBuffer, so: number, d: GpuBuffer, dO: number, n: number): void;
  clearBuffer(b: GpuBuffer, o?: number, n?: number): void;
  finish(): unknown;
}
interface Pass {
  setPipeline(p: unknown): void;
  setBindGroup(i: number, g: unknown): void;
  dispatchWorkgroups(x: number, y: number, z: number): void;
  end(): void;
}

/**
 * Make recorded calls again on `b`'s device: new encoders, passes and command buffers, the same
 * pipelines, bind groups and buffers. Each write carries `bytesAt(index)` where that gives bytes,
 * else its recorded ones. Dispatches count as this package's ({@link noteRawDispatch}).
 */
export function makeCalls(
  b: WebGpuInternals,
  calls: readonly RecordedCall[],
  bytesAt: (index: number) => ArrayBufferView | undefined = () => undefined,
): void {
  const device = b.device as unknown as { createCommandEncoder(): Encoder };
  const queue = b.queue as unknown as {
    writeBuffer(b: GpuBuffer, o: number, d: ArrayBufferView): void;
    submit(c: unknown[]): void;
  };
  const encoders: Encoder[] = [];
  const passes: Pass[] = [];
  const finished: unknown[] = [];
  for (let i = 0; i < calls.length; i++) {
    const c = calls[i];
    switch (c.op) {
      case "encoder":
        encoders[c.id] = device.createCommandEncoder();
        break;
      case "pass":
        passes[c.id] = encoders[c.encoder].beginComputePass();
        break;
      case "pipeline":
        passes[c.pass].setPipeline(c.pipeline);
        break;
      case "group":
        passes[c.pass].setBindGroup(c.index, c.group);
        break;
      case "dispatch":
        passes[c.pass].dispatchWorkgroups(c.x, c.y, c.z);
        noteRawDispatch();
        break;
      case "end":
        passes[c.pass].end();
        break;
      case "copy":
        encoders[c.encoder].copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
        break;
      case "clear":
        encoders[c.encoder].clearBuffer(c.buffer, c.offset, c.size);
        break;
      case "finish":
        finished[c.id] = encoders[c.encoder].finish();
        break;
      case "write":
        queue.writeBuffer(c.buffer, c.offset, bytesAt(i) ?? c.bytes);
        break;
      case "submit":
        queue.submit(c.commandBuffers.map((id) => finished[id]));
        break;
    }
  }
}
