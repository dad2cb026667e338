#!/usr/bin/env python3
"""The peers' side of tools/bench_peers.sh: diffusers and OpenVINO timed as `sdlens-cli bench` times SD Lens.

Each timing mode measures one peer at one size in this process, so its peak RSS is that peer's alone, and
prints one JSON line (the shape of `sdlens-cli bench --no-pipeline`'s, with a "peer" field):
  U-Net call, batch 2 (cond + uncond, as with guidance): latents [2,4,S/8,S/8], timestep 999,
  encoder_hidden_states [2,77,768]; VAE decode, batch 1: latents [1,4,S/8,S/8]; minimum and median of
  --repeat calls after one warm-up call (as bench does); peak RSS (ru_maxrss).

  bench_peers.py diffusers --model DIR --size S [--repeat R] [--threads N] [--dtype bf16] [--channels-last]
      UNet2DConditionModel and AutoencoderKL from DIR/unet and DIR/vae, eager, under torch.inference_mode().
  bench_peers.py openvino --ir DIR --size S [--repeat R] [--threads N]
      DIR/unet and DIR/vae_decoder/openvino_model.xml (optimum-cli's export), reshaped to static shapes and
      compiled for "CPU" with its defaults but INFERENCE_NUM_THREADS.
  bench_peers.py tag PEER R    one JSON object on stdin (sdlens-cli bench --repeat R) -> one line, "peer": PEER
  bench_peers.py table FILE.jsonl   the Markdown table of tools/bench_peers.sh

Not a test: timings for notes.
"""
import argparse
import json
import resource
import statistics
import sys
import time

# Peer ids in the table's column order, with the short names of the ratio columns.
PEERS = {"sdlens": "SD Lens", "diffusers": "diffusers", "diffusers-nhwc": "diffusers NHWC", "openvino": "OpenVINO"}


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def timed(fn, repeat):
    """One warm-up call (first calls allocate and pick kernels), then min and median in ms of `repeat`."""
    fn()
    ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000.0)
    return {"median": statistics.median(ms), "min": min(ms), "repeat": repeat}


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def bench_diffusers(a):
    import torch
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.set_num_threads(a.threads)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype]
    t0 = time.perf_counter()
    unet = UNet2DConditionModel.from_pretrained(a.model, subfolder="unet", torch_dtype=dtype).eval()
    vae = AutoencoderKL.from_pretrained(a.model, subfolder="vae", torch_dtype=dtype).eval()
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    unet.to(memory_format=fmt)
    vae.to(memory_format=fmt)
    load_s = time.perf_counter() - t0
    # Loading can peak above running (without accelerate, which the pins leave out, diffusers allocates
    # the model and then copies the loaded weights into it), so keep the peak up to here apart.
    load_rss = peak_rss_mb()

    h = w = a.size // 8
    gen = torch.Generator().manual_seed(0)
    # Random inputs of the right shapes: the cost of a call does not depend on the values.
    sample = torch.randn(2, 4, h, w, generator=gen).to(dtype=dtype, memory_format=fmt)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, generator=gen).to(dtype)
    t = torch.tensor(999)
    latents = torch.randn(1, 4, h, w, generator=gen).to(dtype=dtype, memory_format=fmt)
    scale = vae.config.scaling_factor
    with torch.inference_mode():
        unet_ms = timed(lambda: unet(sample, t, encoder_hidden_states=context).sample, a.repeat)
        vae_ms = timed(lambda: vae.decode(latents / scale).sample, a.repeat)
    return {
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__, "device": cpu_name(),
                     "threads": torch.get_num_threads()},
        "dtype": a.dtype,
        "memory_format": "channels-last" if a.channels_last else "contiguous",
        "attention": type(next(iter(unet.attn_processors.values()))).__name__,
        "load_s": load_s,
        "peak_rss_after_load_mb": load_rss,
        "unet_call_ms": {"batch": 2, **unet_ms},
        "vae_decode_ms": vae_ms,
    }


def bench_openvino(a):
    import numpy as np
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": a.threads}  # everything else stays the CPU plugin's default
    h = w = a.size // 8
    rng = np.random.default_rng(0)

    def name(port):
        # A port can carry several tensor names (the timestep also goes by a number), so prefer the
        # export's input names.
        names = port.get_names()
        known = [n for n in ("sample", "timestep", "encoder_hidden_states", "latent_sample") if n in names]
        return known[0] if known else port.get_any_name()

    def compile_static(xml, shapes):
        """read_model, reshape to `shapes` (input name -> shape), compile, and random inputs of those shapes:
        static shapes let the plugin plan its memory and kernels once, as it would in a pipeline at one size."""
        model = core.read_model(xml)
        model.reshape({name: ov.PartialShape(shape) for name, shape in shapes.items()})
        compiled = core.compile_model(model, "CPU", config)
        inputs = {}
        for port in compiled.inputs:
            shape = [d.get_length() for d in port.get_partial_shape()]
            inputs[name(port)] = rng.standard_normal(shape).astype(port.get_element_type().to_dtype())
        return compiled, inputs

    def unet_shapes(model):
        # The export's inputs are sample, timestep and encoder_hidden_states; the timestep is a scalar or
        # one per batch entry depending on the exporter, so follow the IR's rank.
        shapes = {}
        for port in model.inputs:
            n, ps = name(port), port.get_partial_shape()
            if n == "sample":
                shapes[n] = [2, 4, h, w]
            elif n == "timestep":
                shapes[n] = [2] * ps.rank.get_length()
            elif n == "encoder_hidden_states":
                shapes[n] = [2, 77, ps[2].get_length() if ps[2].is_static else 768]
            else:
                raise SystemExit(f"openvino: unexpected U-Net input {n} {ps}")
        return shapes

    t0 = time.perf_counter()
    unet_xml = f"{a.ir}/unet/openvino_model.xml"
    unet, unet_in = compile_static(unet_xml, unet_shapes(core.read_model(unet_xml)))
    vae, vae_in = compile_static(f"{a.ir}/vae_decoder/openvino_model.xml", {"latent_sample": [1, 4, h, w]})
    load_s = time.perf_counter() - t0
    load_rss = peak_rss_mb()
    if "timestep" in unet_in:
        unet_in["timestep"][...] = 999
    unet_req, vae_req = unet.create_infer_request(), vae.create_infer_request()
    unet_ms = timed(lambda: unet_req.infer(unet_in), a.repeat)
    vae_ms = timed(lambda: vae_req.infer(vae_in), a.repeat)

    def precision(compiled):
        # What the plugin actually computes in (bf16 on a CPU with AVX512-BF16 or AMX, else f32).
        p = compiled.get_property("INFERENCE_PRECISION_HINT")
        return p.to_string() if hasattr(p, "to_string") else str(p)

    return {
        "versions": {"openvino": ov.get_version(), "device": cpu_name(),
                     "threads": int(unet.get_property("INFERENCE_NUM_THREADS")),
                     "cpu_plugin": core.get_property("CPU", "FULL_DEVICE_NAME")},
        "ir": a.ir,
        "inputs": {"unet": {k: list(v.shape) for k, v in unet_in.items()},
                   "vae_decoder": {k: list(v.shape) for k, v in vae_in.items()}},
        "precision": {"unet": precision(unet), "vae_decode": precision(vae)},
        "load_s": load_s,
        "peak_rss_after_load_mb": load_rss,
        "unet_call_ms": {"batch": 2, **unet_ms},
        "vae_decode_ms": vae_ms,
    }


def table(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {(r["peer"], r["size"][0]): r for r in rows}
    sizes = sorted({r["size"][0] for r in rows})
    peers = [p for p in PEERS if any(r["peer"] == p for r in rows)]
    first = {p: next(r for r in rows if r["peer"] == p) for p in peers}  # what each column ran
    v = rows[0]["versions"]
    print(f"CPU: {v['device']}, {v['threads']} threads\n")

    names = {}
    for p, r in first.items():
        v = r["versions"]
        if p == "sdlens":
            names[p] = "SD Lens"
            conv = f", convolutions {r['conv_kernel']}" if "conv_kernel" in r else ""
            print(f"- SD Lens: LibTorch {v['libtorch']}, {r['precision']['summary']}, "
                  f"attention {r['attention_kernel']}{conv}, {r['memory_format']}")
        elif p.startswith("diffusers"):
            names[p] = f"diffusers + PyTorch {'.'.join(v['torch'].split('.')[:2])}" + (" NHWC" if "nhwc" in p else "")
            print(f"- diffusers {v['diffusers']} + PyTorch {v['torch']}: {r['dtype']}, {r['memory_format']}, "
                  f"attention {r['attention']}")
        else:
            names[p] = f"OpenVINO {'.'.join(v['openvino'].split('.')[:2])}"
            print(f"- OpenVINO {v['openvino'].split('-')[0]}: fp16 IR, inference precision U-Net {r['precision']['unet']}, "
                  f"VAE decoder {r['precision']['vae_decode']}")
    print()

    # Ratio columns: OpenVINO first, then diffusers.
    others = [p for p in reversed(peers) if p != "sdlens"] if "sdlens" in peers else []
    cols = [names[p] for p in peers] + [f"{PEERS[p]} / SD Lens" for p in others]
    print("| | " + " | ".join(cols) + " |")
    print("| --- |" + " ---: |" * len(cols))

    def cells(sizes, get, show):
        """Each peer's value, then peer / SD Lens, for each of `sizes`, joined with ' / ' in one cell."""
        out = [" / ".join(show(get(by[(p, s)])) if (p, s) in by else "–" for s in sizes) for p in peers]
        for p in others:
            ratios = [f"{get(by[(p, s)]) / get(by[('sdlens', s)]):.2f}×" if (p, s) in by and ("sdlens", s) in by
                      else "–" for s in sizes]
            out.append(" / ".join(ratios))
        return out

    for s in sizes:
        for label, key in (("U-Net call", "unet_call_ms"), ("VAE decode", "vae_decode_ms")):
            c = cells([s], lambda r, key=key: r[key]["min"], lambda ms: f"{ms / 1000:.2f} s")
            print(f"| {label} {s}² | " + " | ".join(c) + " |")
    c = cells(sizes, lambda r: r["peak_rss_mb"], lambda mb: f"{mb / 1024:.2f}")
    print("| peak RSS " + " / ".join(f"{s}²" for s in sizes) + " (GB) | " + " | ".join(c) + " |")
    repeat = rows[0]["unet_call_ms"]["repeat"]
    print(f"\nTimes: minimum of {repeat} calls after a warm-up (medians in {path}); U-Net call at batch 2, "
          "VAE decode at batch 1. Ratios are peer / SD Lens: above 1 SD Lens is faster (or, for RSS, smaller). "
          "SD Lens' RSS is that of `bench`, which also loads the text encoder and the VAE encoder and encodes an "
          "image; the peers load the U-Net and the VAE (decoder) only.")
    # A peer whose peak is reached while loading (diffusers without accelerate) says so.
    loading = [f"{names[r['peer']]} {r['size'][0]}²: {r['peak_rss_after_load_mb'] / 1024:.2f} GB"
               for r in rows if "peak_rss_after_load_mb" in r]
    if loading:
        print("Peak RSS reached by the end of loading (before the first call): " + ", ".join(loading) + ".")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    d = sub.add_parser("diffusers")
    d.add_argument("--model", required=True)
    d.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"])
    d.add_argument("--channels-last", action="store_true")
    o = sub.add_parser("openvino")
    o.add_argument("--ir", required=True)
    for m in (d, o):
        m.add_argument("--size", type=int, required=True)
        m.add_argument("--repeat", type=int, default=3)
        m.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("tag")
    t.add_argument("peer", choices=sorted(PEERS))
    t.add_argument("repeat", type=int)
    sub.add_parser("table").add_argument("file")
    a = p.parse_args()

    if a.mode == "table":
        return table(a.file)
    if a.mode == "tag":
        j = json.load(sys.stdin)
        for key in ("unet_call_ms", "vae_decode_ms"):  # bench does not say how many calls it timed
            j[key].setdefault("repeat", a.repeat)
    else:
        if a.size <= 0 or a.size % 8:
            raise SystemExit("--size must be a positive multiple of 8")
        j = bench_diffusers(a) if a.mode == "diffusers" else bench_openvino(a)
        j["size"] = [a.size, a.size]
        j["peak_rss_mb"] = peak_rss_mb()
    peer = a.peer if a.mode == "tag" else "diffusers-nhwc" if getattr(a, "channels_last", False) else a.mode
    print(json.dumps({"peer": peer, **j}))


if __name__ == "__main__":
    main()
