#!/usr/bin/env python3
"""LoRA reference numbers from diffusers + peft themselves, and the tiny model through their current
default attention (torch SDPA).

Writes to tests/data/:
  pypi_lora_kohya.safetensors  a kohya LoRA (diffusers paths, float16, .alpha per layer) on every linear
                               and convolution of the U-Net (transformers, proj_in/proj_out, resnets with
                               3x3 LoCon pairs, samplers, conv_in/conv_out, time embedding) and the text
                               encoder's layers; ranks and alphas differ by kind of layer
  pypi_lora_peft.safetensors   a LoRA as diffusers' train_text_to_image_lora.py saves one (peft adapters,
                               convert_state_dict_to_diffusers, save_lora_weights with the LoraConfigs as
                               lora_adapter_metadata): U-Net "unet.<path>.lora.down.weight", text encoder
                               "<path>.lora_linear_layer.down.weight"; attention projections, float32,
                               alpha != rank, rsLoRA on the text encoder
  pypi_reference.safetensors   what StableDiffusionPipeline computes with both loaded by load_lora_weights
                               and set_adapters at strengths 0.8 and -0.5: the text encoder's output, one
                               U-Net call, a DPM++ 2M txt2img run (every step's latents, the image); the
                               same three without LoRAs
  pypi_reference.json          the settings, the versions, the CPU, and how far the run without LoRAs is
                               from reference.safetensors' (older versions, other attention code)

Run on the CPU in a venv outside the clone:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch "diffusers<0.42" "transformers<5" peft safetensors accelerate
    /tmp/refvenv/bin/python tools/make_pypi_reference.py

transformers 5 drops CLIPTextModel's text_model level, with which diffusers 0.42 places only some of a
kohya text-encoder LoRA (q_proj/k_proj/v_proj/out_proj are left out with a warning), and transformers 4
needs huggingface_hub < 1, which diffusers 0.40 on refuses: hence the pins. The committed outputs were
made with torch 2.15.0, diffusers 0.39.0, transformers 4.57.6, peft 0.21.2 on an AMD EPYC, one thread.
A rerun writes the same tensors and metadata; safetensors may order the header differently.
"""
import json
import os
import platform
import tempfile

import diffusers
import peft
import torch
import transformers
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.tuners.lora import LoraLayer
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
KOHYA = "pypi_lora_kohya.safetensors"
PEFT = "pypi_lora_peft.safetensors"
STRENGTHS = {"kohya": 0.8, "peft": -0.5}

# The settings of reference.safetensors' e2e.dpmpp_2m, so the run without LoRAs is also a cross-check of
# that older reference against current versions.
PROMPT, NEGATIVE = "a dog wearing hat", ""
STEPS, GUIDANCE, SIZE = 8, 7.5, 128
UNET_T = 500


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def load_pipe():
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(DATA, "tiny-sd"), torch_dtype=torch.float32)
    # As SD Lens and reference.safetensors build a sampler: the model's training keys, the sampler's own
    # spacing (from_config would carry PNDM's "leading" over).
    training = {k: pipe.scheduler.config[k] for k in ("num_train_timesteps", "beta_start", "beta_end",
                                                      "beta_schedule", "prediction_type")}
    pipe.scheduler = DPMSolverMultistepScheduler(**training, steps_offset=1)
    pipe.set_progress_bar_config(disable=True)
    # The point of the run is diffusers' default path; fail rather than record another one.
    for name, proc in pipe.unet.attn_processors.items():
        assert isinstance(proc, AttnProcessor2_0), (name, type(proc))
    return pipe


def kohya_lora(unet, text_encoder, seed):
    """kohya's layout: lora_<net>_<module path with _>, down [r, in(, kh, kw)], up [out, r(, 1, 1)], alpha.
    LoCon's 3x3 convolutions get their own rank and alpha, as conv_dim and conv_alpha give them."""
    gen = torch.Generator("cpu").manual_seed(seed)
    tensors = {}
    nets = (("lora_unet_", unet, lambda n: True),
            ("lora_te_", text_encoder, lambda n: n.startswith("text_model.encoder.layers.")))
    for prefix, model, wanted in nets:
        for name, module in model.named_modules():
            if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) or not wanted(name):
                continue
            conv3 = isinstance(module, torch.nn.Conv2d) and module.kernel_size != (1, 1)
            rank, alpha = (2, 1.5) if conv3 else (4, 2.0)
            # An alpha above the rank that the others do not share. Not on an attention projection:
            # diffusers 0.39-0.42 leave those out of peft's alpha_pattern (they keep the processor
            # spelling, "to_v_lora"), so such a layer would get the common alpha, unlike in kohya's own code.
            if name.endswith("proj_out"):
                alpha = 6.0
            w = module.weight
            down_shape = (rank, w.shape[1], *w.shape[2:])
            up_shape = (w.shape[0], rank, *([1, 1] if w.dim() == 4 else []))
            key = prefix + name.replace(".", "_")
            tensors[key + ".lora_down.weight"] = (torch.randn(down_shape, generator=gen) * 0.1).half()
            tensors[key + ".lora_up.weight"] = (torch.randn(up_shape, generator=gen) * 0.1).half()
            tensors[key + ".alpha"] = torch.tensor(alpha).half()
    return tensors


def peft_lora(pipe, seed, path):
    """A LoRA as train_text_to_image_lora.py saves one: add_adapter with a LoraConfig, then
    save_lora_weights with the peft state dicts and the configs as metadata. Its matrices are random
    instead of trained (peft starts lora_B at zero)."""
    unet_config = LoraConfig(r=4, lora_alpha=6, init_lora_weights="gaussian",
                             target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    text_config = LoraConfig(r=4, lora_alpha=3, init_lora_weights="gaussian", use_rslora=True,
                             target_modules=["q_proj", "k_proj", "v_proj", "out_proj"])
    pipe.unet.add_adapter(unet_config)
    pipe.text_encoder.add_adapter(text_config)
    gen = torch.Generator("cpu").manual_seed(seed)
    for model in (pipe.unet, pipe.text_encoder):
        for name, p in sorted(model.named_parameters()):
            if "lora_" in name:
                p.data = torch.randn(p.shape, generator=gen) * 0.1
    with tempfile.TemporaryDirectory() as folder:
        StableDiffusionPipeline.save_lora_weights(
            folder,
            unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.unet)),
            text_encoder_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(pipe.text_encoder)),
            unet_lora_adapter_metadata=adapter_metadata(unet_config),
            text_encoder_lora_adapter_metadata=adapter_metadata(text_config),
            weight_name=PEFT)
        os.replace(os.path.join(folder, PEFT), path)


def adapter_metadata(config):
    # Without the local path and in a fixed order (target_modules is a set), so a rerun writes the same.
    meta = config.to_dict()
    meta["base_model_name_or_path"] = None
    meta["target_modules"] = sorted(meta["target_modules"])
    return meta


def lora_scales(model, adapter):
    return {name: m.scaling[adapter] for name, m in model.named_modules()
            if isinstance(m, LoraLayer) and adapter in m.lora_A}


def expected_kohya_scales(tensors, prefix):
    return {k[len(prefix):-len(".alpha")]: float(v) / tensors[k[:-len(".alpha")] + ".lora_down.weight"].shape[0]
            for k, v in tensors.items() if k.startswith(prefix) and k.endswith(".alpha")}


def check_scales(got, want, what):
    """diffusers leaves out with a warning only what it cannot place, and may give a layer another
    alpha; every layer must have arrived with alpha / rank (alpha / sqrt(rank) for rsLoRA)."""
    got = {k.replace(".", "_"): v for k, v in got.items()}
    assert got.keys() == want.keys(), (what, sorted(set(got) ^ set(want))[:5])
    bad = [(k, got[k], want[k]) for k in want if abs(got[k] - want[k]) > 1e-6]
    assert not bad, (what, bad[:5])


def run(pipe, init, prefix, tensors):
    with torch.no_grad():
        prompt, negative = pipe.encode_prompt(PROMPT, "cpu", 1, True, NEGATIVE)
        tensors[prefix + ".te.prompt"] = prompt
        tensors[prefix + ".te.negative"] = negative
        sample = torch.randn(2, 4, 16, 16, generator=torch.Generator("cpu").manual_seed(77))
        tensors["unet.sample"] = sample
        context = torch.cat([negative, prompt])
        tensors[prefix + ".unet.out"] = pipe.unet(sample, UNET_T, encoder_hidden_states=context).sample
    steps = []

    def record(p, i, t, kwargs):
        steps.append(kwargs["latents"][0].clone())
        return kwargs

    image = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
                 height=SIZE, width=SIZE, latents=init.clone(), output_type="pt",
                 callback_on_step_end=record).images
    tensors[prefix + ".e2e.steps"] = torch.stack(steps)
    tensors[prefix + ".e2e.image"] = image


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    with safe_open(os.path.join(DATA, "reference.safetensors"), "pt") as f:
        init = f.get_tensor("e2e.dpmpp_2m.init")
        old = {k: f.get_tensor("e2e.dpmpp_2m." + k) for k in ("steps", "image")}
    tensors = {"e2e.init": init}

    pipe = load_pipe()
    run(pipe, init, "base", tensors)
    versus_old = {k: float((tensors["base.e2e." + k] - old[k]).abs().max()) for k in old}

    kohya = kohya_lora(pipe.unet, pipe.text_encoder, seed=16)
    save_file(kohya, os.path.join(DATA, KOHYA), metadata={"ss_network_module": "networks.lora"})
    peft_lora(load_pipe(), seed=17, path=os.path.join(DATA, PEFT))

    pipe = load_pipe()
    pipe.load_lora_weights(DATA, weight_name=KOHYA, adapter_name="kohya")
    pipe.load_lora_weights(DATA, weight_name=PEFT, adapter_name="peft")
    scales = {a: {"unet": lora_scales(pipe.unet, a), "text_encoder": lora_scales(pipe.text_encoder, a)}
              for a in STRENGTHS}
    check_scales(scales["kohya"]["unet"], expected_kohya_scales(kohya, "lora_unet_"), "kohya unet")
    check_scales(scales["kohya"]["text_encoder"], expected_kohya_scales(kohya, "lora_te_"), "kohya text encoder")
    check_scales(scales["peft"]["unet"], {k.replace(".", "_"): 6 / 4 for k in scales["peft"]["unet"]}, "peft unet")
    check_scales(scales["peft"]["text_encoder"], {k.replace(".", "_"): 3 / 4 ** 0.5 for k in scales["peft"]["text_encoder"]},
                 "peft text encoder")
    loaded = {a: {net: len(s) for net, s in nets.items()} for a, nets in scales.items()}
    pipe.set_adapters(list(STRENGTHS), adapter_weights=list(STRENGTHS.values()))
    run(pipe, init, "lora", tensors)

    out = {
        "generator": "tools/make_pypi_reference.py",
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__, "peft": peft.__version__,
        "cpu": cpu_name(), "threads": 1, "dtype": "float32",
        "attention": "AttnProcessor2_0 (torch scaled_dot_product_attention)",
        "loras": {"files": [KOHYA, PEFT], "strengths": STRENGTHS, "layers": loaded,
                  "loading": "pipe.load_lora_weights(..., adapter_name) twice, pipe.set_adapters(names, "
                             "adapter_weights=strengths)"},
        "prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": STEPS, "guidance_scale": GUIDANCE,
        "height": SIZE, "width": SIZE, "scheduler": "dpmpp_2m (DPMSolverMultistepScheduler with tiny-sd's betas, steps_offset 1)",
        "unet_timestep": UNET_T,
        "keys": "{base,lora}.te.{prompt,negative} (encode_prompt), unet.sample (seed 77) and {base,lora}.unet.out "
                "(context: negative then prompt), e2e.init (= reference.safetensors' e2e.dpmpp_2m.init, "
                "before init_noise_sigma), {base,lora}.e2e.steps (latents after each step), "
                "{base,lora}.e2e.image (in [0, 1])",
        "base_vs_reference_safetensors_max_abs": versus_old,
    }
    with open(os.path.join(DATA, "pypi_reference.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(DATA, "pypi_reference.safetensors"),
              metadata={k: out[k] for k in ("generator", "torch", "diffusers", "transformers", "peft")})


if __name__ == "__main__":
    main()
