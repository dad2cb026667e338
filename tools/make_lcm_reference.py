#!/usr/bin/env python3
"""Reference numbers for the lcm scheduler, from diffusers' own LCMScheduler.

Writes tests/data/lcm_reference.json (schedules, the config, diffusers' refusal of too many steps)
and tests/data/lcm_reference.safetensors (step() chains on fixed inputs, the injected noise
included; a 4-step txt2img run of the tiny model at guidance 1; the same with the tiny U-Net turned
into an LCM-distilled one, time_cond_proj_dim 32, guided by the guidance-scale embedding). Runs on the CPU with the reference lab of ../shared/reflab (diffusers 0.27.2, Debian's
torch 1.13):

    ../shared/reflab/setup.sh /work/.mirror /tmp/reflab    # prints the PYTHONPATH
    PYTHONPATH=... /usr/bin/python3 tools/make_lcm_reference.py
"""
import ast
import json
import os
import tempfile

import diffusers
import torch
from diffusers import LCMScheduler, UNet2DConditionModel
from safetensors import safe_open
from safetensors.torch import save_file

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")

# Keys SchedulerConfig reads; the rest of LCMScheduler's config (thresholding, rescaling) keeps
# diffusers' defaults, which SD Lens does not offer.
CONFIG_KEYS = ["num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "original_inference_steps",
               "clip_sample", "clip_sample_range", "set_alpha_to_one", "steps_offset", "prediction_type",
               "timestep_spacing", "timestep_scaling"]


def schedule(steps, **config):
    s = LCMScheduler(**config)
    s.set_timesteps(steps)
    return {"timesteps": s.timesteps.tolist(), "init_noise_sigma": float(s.init_noise_sigma)}


def chain(prefix, steps, seed, config, tensors):
    """Every step of a run on fixed model outputs, as a pipeline calls step(): timestep taken from
    scheduler.timesteps, one CPU generator for the whole run."""
    s = LCMScheduler(**config)
    s.set_timesteps(steps)
    inputs = torch.Generator("cpu").manual_seed(seed)
    sample = torch.randn(1, 4, 8, 8, generator=inputs)
    tensors[prefix + ".sample"] = sample
    noise_gen = torch.Generator("cpu").manual_seed(seed + 1)
    for i, t in enumerate(s.timesteps):
        model_output = torch.randn(1, 4, 8, 8, generator=inputs)
        prev, denoised = s.step(model_output, t, sample, generator=noise_gen, return_dict=False)
        tensors[f"{prefix}.model_output.{i}"] = model_output
        tensors[f"{prefix}.prev_sample.{i}"] = prev
        tensors[f"{prefix}.denoised.{i}"] = denoised
        sample = prev
    return {"steps": steps, "input_seed": seed, "noise_seed": seed + 1, "config": config,
            "timesteps": s.timesteps.tolist()}


def txt2img(steps, seed, tensors):
    """StableDiffusionPipeline's loop at guidance_scale 1 (no classifier-free guidance, so one
    batch-1 U-Net call per step), written out because the pipeline class needs transformers: the
    prompt embedding is the shared reference's text-encoder output for "a dog wearing hat"."""
    with safe_open(os.path.join(DATA, "reference.safetensors")) as f:
        embeds = f.get_tensor("te.last_hidden_state")[0:1]
    unet = UNet2DConditionModel.from_pretrained(os.path.join(DATA, "tiny-sd", "unet"), torch_dtype=torch.float32)
    s = LCMScheduler()
    s.set_timesteps(steps)
    gen = torch.Generator("cpu").manual_seed(seed)
    latents = torch.randn(1, 4, 16, 16, generator=gen) * s.init_noise_sigma
    tensors["e2e.init"] = latents
    out = []
    with torch.no_grad():
        for t in s.timesteps:
            pred = unet(s.scale_model_input(latents, t), t, encoder_hidden_states=embeds).sample
            latents = s.step(pred, t, latents, generator=gen, return_dict=False)[0]
            out.append(latents[0])
    tensors["e2e.steps"] = torch.stack(out)
    return {"prompt": "a dog wearing hat", "steps": steps, "seed": seed, "guidance_scale": 1.0,
            "height": 128, "width": 128, "timesteps": s.timesteps.tolist(),
            "keys": "e2e.init (the generator's first draw), e2e.steps (latents after each step)"}


def guidance_embedding(w, dim):
    """LatentConsistencyModelPipeline.get_guidance_scale_embedding, as the pipeline calls it. Taken from
    diffusers' source file, since importing the pipeline class needs transformers."""
    path = os.path.join(os.path.dirname(diffusers.__file__), "pipelines", "latent_consistency_models",
                        "pipeline_latent_consistency_text2img.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "get_guidance_scale_embedding")
    namespace = {"torch": torch}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), path, "exec"), namespace)
    return namespace["get_guidance_scale_embedding"](None, w, embedding_dim=dim)


def distilled(steps, seed, guidance, tensors):
    """tiny-sd's U-Net with time_cond_proj_dim 32 (LCM_Dreamshaper_v7 has 256 on 320 channels): its
    weights plus a random cond_proj, stored as float16 like the rest. Then LatentConsistencyModelPipeline's
    loop, written out (the class needs transformers): no classifier-free guidance, the guidance enters
    as w_embedding of w = guidance - 1."""
    dim = 32
    source = os.path.join(DATA, "tiny-sd", "unet")
    with open(os.path.join(source, "config.json")) as f:
        config = json.load(f)
    config["time_cond_proj_dim"] = dim
    with safe_open(os.path.join(source, "diffusion_pytorch_model.safetensors")) as f:
        weights = {k: f.get_tensor(k) for k in f.keys()}
    proj = torch.randn(config["block_out_channels"][0], dim, generator=torch.Generator("cpu").manual_seed(seed))
    weights["time_embedding.cond_proj.weight"] = (proj / dim ** 0.5).half()
    tensors["distilled.cond_proj.weight"] = weights["time_embedding.cond_proj.weight"]
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f)
        save_file(weights, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
        unet = UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch.float32)
    with safe_open(os.path.join(DATA, "reference.safetensors")) as f:
        embeds = f.get_tensor("te.last_hidden_state")[0:1]

    w = torch.tensor([0.0, 1.5, 7.5])
    tensors["distilled.w"] = w
    tensors["distilled.w_embedding"] = guidance_embedding(w, dim)
    s = LCMScheduler()
    s.set_timesteps(steps)
    gen = torch.Generator("cpu").manual_seed(seed)
    latents = torch.randn(1, 4, 16, 16, generator=gen) * s.init_noise_sigma
    tensors["distilled.init"] = latents
    w_embedding = guidance_embedding(torch.tensor(guidance - 1).repeat(1), dim)
    out = []
    with torch.no_grad():
        for t in s.timesteps:
            pred = unet(latents, t, timestep_cond=w_embedding, encoder_hidden_states=embeds).sample
            latents = s.step(pred, t, latents, generator=gen, return_dict=False)[0]
            out.append(latents[0])
    tensors["distilled.steps"] = torch.stack(out)
    return {"time_cond_proj_dim": dim, "prompt": "a dog wearing hat", "steps": steps, "seed": seed,
            "guidance_scale": guidance, "height": 128, "width": 128, "timesteps": s.timesteps.tolist(),
            "keys": "distilled.cond_proj.weight (F16, added to tiny-sd's U-Net), distilled.w and "
                    "distilled.w_embedding (the guidance-scale embedding of w), distilled.init, distilled.steps"}


def main():
    out = {
        "generator": "tools/make_lcm_reference.py",
        "diffusers": diffusers.__version__,
        "torch": torch.__version__,
        "scheduler_config": {k: LCMScheduler().config[k] for k in CONFIG_KEYS},
        "schedulers": {f"lcm.{n}": schedule(n) for n in (1, 2, 4, 8, 7, 20, 50)},
        "overrides": [],
    }
    for config, steps in (({"original_inference_steps": 100}, 4), ({"original_inference_steps": 100}, 3),
                          ({"num_train_timesteps": 500, "original_inference_steps": 30}, 6)):
        out["overrides"].append({"config": config, "steps": steps, **schedule(steps, **config)})
    try:
        LCMScheduler().set_timesteps(51)
        out["error_51_steps"] = None
    except ValueError as e:
        out["error_51_steps"] = str(e)

    tensors = {}
    out["chains"] = {
        "eps4": chain("eps4", 4, 1000, {}, tensors),
        "eps8": chain("eps8", 8, 2000, {}, tensors),
        "v3": chain("v3", 3, 3000, {"prediction_type": "v_prediction", "clip_sample": True,
                                    "original_inference_steps": 100, "timestep_scaling": 5.0}, tensors),
        "sample2": chain("sample2", 2, 4000, {"prediction_type": "sample"}, tensors),
    }
    out["e2e"] = txt2img(4, 1234, tensors)
    out["distilled"] = distilled(4, 4321, 8.5, tensors)
    s = LCMScheduler()
    s.set_timesteps(4)
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator("cpu").manual_seed(5000))
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator("cpu").manual_seed(5001))
    tensors["add_noise.original"], tensors["add_noise.noise"] = x0, noise
    for t in s.timesteps.tolist():
        tensors[f"add_noise.{t}"] = s.add_noise(x0, noise, torch.tensor([t]))

    with open(os.path.join(DATA, "lcm_reference.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    save_file(tensors, os.path.join(DATA, "lcm_reference.safetensors"),
              metadata={"generator": out["generator"], "diffusers": out["diffusers"], "torch": out["torch"]})


if __name__ == "__main__":
    main()
