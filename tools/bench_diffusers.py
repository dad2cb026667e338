#!/usr/bin/env python3
"""diffusers timed on the same model folder as `sdlens-cli bench`, for issue 6's side-by-side figures.

Stages, each written to --out as soon as it is measured (a run cut short keeps what it had):
  load, text encoder (batch 2), U-Net call (batch 2, cond + uncond), VAE encode and decode (batch 1),
  the whole pipeline (CFG 7.5, --steps of --scheduler, output copied to the host as numpy), then with
  --compile the U-Net under torch.compile (first call = compile time, then the same timing).
Attention is diffusers' default for torch 2 (AttnProcessor2_0: scaled_dot_product_attention).

  python3 tools/bench_diffusers.py --model DIR [--device cuda] [--dtype fp16] [--width 512 --height 512]
      [--steps 50] [--scheduler lms] [--repeat 10] [--compile [--compile-mode MODE]] --out FILE.json

Not a test: timings for notes. One JSON object is also printed on stdout at the end.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

SCHEDULERS = {
    "lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
PROMPT = "a dog wearing hat"  # the prompt sdlens-cli bench uses


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="fp16", choices=sorted(DTYPES))
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--scheduler", default="lms", choices=sorted(SCHEDULERS))
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--pipeline-repeat", type=int, default=2)
    p.add_argument("--no-pipeline", action="store_true")
    p.add_argument("--compile", action="store_true", help="also time the U-Net under torch.compile")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune, ...")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    return p.parse_args()


class Report:
    """The JSON object, rewritten after every stage."""

    def __init__(self, path):
        self.path = path
        self.data = {}

    def set(self, key, value):
        self.data[key] = value
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=2)
            f.write("\n")
        os.replace(tmp, self.path)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, fn, repeat, warmup=2):
    """Median and min in ms of `repeat` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    ms = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        ms.append((time.perf_counter() - t0) * 1000.0)
    return {"median": statistics.median(ms), "min": min(ms), "repeat": repeat}


def main():
    a = parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    dtype = DTYPES[a.dtype]
    rep = Report(a.out)

    import diffusers
    import transformers
    from diffusers import StableDiffusionPipeline

    versions = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                "transformers": transformers.__version__, "python": sys.version.split()[0],
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "cuda": torch.version.cuda, "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "threads": torch.get_num_threads()}
    rep.set("versions", versions)
    rep.set("settings", {"model": a.model, "dtype": a.dtype, "size": [a.width, a.height], "steps": a.steps,
                         "scheduler": a.scheduler, "guidance": a.guidance, "repeat": a.repeat,
                         "attention": "diffusers default (AttnProcessor2_0, SDPA)"})

    t0 = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(a.model, torch_dtype=dtype, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = getattr(diffusers, SCHEDULERS[a.scheduler]).from_config(pipe.scheduler.config)
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    sync(device)
    rep.set("load_s", time.perf_counter() - t0)
    rep.set("attention_processor", type(next(iter(pipe.unet.attn_processors.values()))).__name__)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    h, w = a.height // 8, a.width // 8
    gen = torch.Generator("cpu").manual_seed(0)
    with torch.inference_mode():
        ids = pipe.tokenizer([PROMPT, ""], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(device)
        context = None

        def text_encode():
            nonlocal context
            context = pipe.text_encoder(ids)[0]

        rep.set("text_encode_ms", {"batch": 2, **timed(device, text_encode, a.repeat)})

        sample = torch.randn(2, 4, h, w, generator=gen).to(device, dtype)
        t = torch.tensor(500.0, device=device)

        def unet_call(unet=pipe.unet):
            return unet(sample, t, encoder_hidden_states=context).sample

        rep.set("unet_call_ms", {"batch": 2, "latent": [h, w], **timed(device, unet_call, a.repeat, warmup=3)})

        image = (torch.rand(1, 3, a.height, a.width, generator=gen) * 2 - 1).to(device, dtype)
        rep.set("vae_encode_ms", timed(device, lambda: pipe.vae.encode(image).latent_dist.mean, a.repeat))
        latents = torch.randn(1, 4, h, w, generator=gen).to(device, dtype)
        scale = pipe.vae.config.scaling_factor
        rep.set("vae_decode_ms", timed(device, lambda: pipe.vae.decode(latents / scale).sample, a.repeat))

    if not a.no_pipeline:
        def run(steps):
            return pipe(PROMPT, num_inference_steps=steps, guidance_scale=a.guidance, height=a.height,
                        width=a.width, generator=torch.Generator("cpu").manual_seed(0), output_type="np").images

        run(2)  # warm-up: the scheduler's and the pipeline's own first-call costs
        seconds = []
        for _ in range(max(1, a.pipeline_repeat)):
            sync(device)
            t0 = time.perf_counter()
            images = run(a.steps)
            sync(device)
            seconds.append(time.perf_counter() - t0)
        s = statistics.median(seconds)
        rep.set("pipeline", {"steps": a.steps, "scheduler": a.scheduler, "seconds": s, "min_seconds": min(seconds),
                             "runs": len(seconds), "it_per_s": a.steps / s,
                             "finite": bool(__import__("numpy").isfinite(images).all())})
    if device.type == "cuda":
        rep.set("peak_gpu_mib", torch.cuda.max_memory_allocated(device) / 2**20)

    if a.compile:
        compiled = torch.compile(pipe.unet, mode=None if a.compile_mode == "default" else a.compile_mode)
        with torch.inference_mode():
            t0 = time.perf_counter()
            unet_call(compiled)
            sync(device)
            compile_s = time.perf_counter() - t0
            rep.set("compiled_unet_call_ms", {"batch": 2, "latent": [h, w], "mode": a.compile_mode,
                                              "compile_s": compile_s,
                                              **timed(device, lambda: unet_call(compiled), a.repeat, warmup=3)})

    print(json.dumps(rep.data, indent=2))


if __name__ == "__main__":
    main()
