#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into tests/fuzz/<target>/seed-*, from tests/data.

Seeds are small on purpose (libFuzzer caps input length near the largest seed) and cover each
format's main variants. Run from anywhere; re-running rewrites the same bytes. Crashers found later
are added next to them by hand as crash-*, and never regenerated."""
import json
import pathlib
import struct
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
OUT = ROOT / "tests" / "fuzz"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + name)).write_bytes(data if isinstance(data, bytes) else data.encode())


def read_header(path):
    b = path.read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def safetensors(entries, metadata=None):
    """entries: (name, dtype, shape, raw bytes); offsets assigned in order."""
    header, blob = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + blob


def safetensors_seeds():
    header, blob = read_header(DATA / "reference.safetensors")
    small = []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        begin, end = e["data_offsets"]
        if end - begin <= 256:
            small.append((name, e["dtype"], e["shape"], blob[begin:end]))
    put("safetensors", "reference-small", safetensors(small[:6], header.get("__metadata__", {"format": "pt"})))
    put("safetensors", "every-dtype", safetensors([
        ("f32", "F32", [2, 2], struct.pack("<4f", 1, -2, 0.5, 3)),
        ("f16", "F16", [3], struct.pack("<3e", 1, 2, 3)),
        ("bf16", "BF16", [1, 2], b"\x80\x3f\x00\x40"),
        ("i64", "I64", [2], struct.pack("<2q", -1, 77)),
        ("i32", "I32", [], struct.pack("<i", 5)),
        ("empty", "F32", [0, 4], b""),
    ], {"format": "pt", "note": "ünïcode"}))
    put("safetensors", "empty-header", safetensors([]))
    # The single-file names reach this reader first: a few real keys with their real shapes, scaled down.
    sf, _ = read_header(DATA / "tiny-sd.single-file.safetensors")
    keys = [k for k in sf if k != "__metadata__"][:4]
    put("safetensors", "single-file-keys", safetensors(
        [(k, "F16", [1] * len(sf[k]["shape"]), b"\x00\x3c") for k in keys]))


def single_file_seeds():
    header, _ = read_header(DATA / "tiny-sd.single-file.safetensors")
    lines = [f"{k} {e['dtype']} {' '.join(map(str, e['shape']))}".rstrip()
             for k, e in header.items() if k != "__metadata__"]
    put("single_file", "tiny-sd", "\n".join(lines) + "\n")
    # Only the U-Net: the opener must say what is missing.
    put("single_file", "unet-only", "\n".join(l for l in lines if l.startswith("model.diffusion_model.")) + "\n")


def vae_file_seeds():
    header, _ = read_header(DATA / "tiny-sd.single-file.safetensors")
    prefix = "first_stage_model."
    original = [f"{k[len(prefix):]} {e['dtype']} {' '.join(map(str, e['shape']))}".rstrip()
                for k, e in header.items() if k.startswith(prefix)]
    put("vae_file", "original", "\n".join(original + ["model_ema.decay F32", "loss.logvar F32"]) + "\n")
    put("vae_file", "checkpoint-prefix", "\n".join(prefix + l for l in original) + "\n")
    header, _ = read_header(DATA / "tiny-sd" / "vae" / "diffusion_pytorch_model.safetensors")
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    lines = []
    for k, e in header.items():
        if k == "__metadata__":
            continue
        shape = list(e["shape"])
        for new, then in old.items():
            if ".mid_block.attentions.0." + new + "." in k:
                k = k.replace("." + new + ".", "." + then + ".")
                if k.endswith(".weight"):
                    shape += [1, 1]
        lines.append(f"{k} {e['dtype']} {' '.join(map(str, shape))}".rstrip())
    put("vae_file", "diffusers-2022-conv", "\n".join(lines) + "\n")


def lora_file_seeds():
    """Each spelling with tiny-sd's shapes: a few layers of every kind, the refused kinds, and alphas."""
    def pair(base, down, up, suffixes=(".lora_down.weight", ".lora_up.weight")):
        return [f"{base}{suffixes[0]} F16 {' '.join(map(str, down))}", f"{base}{suffixes[1]} F16 {' '.join(map(str, up))}"]
    kohya = (pair("lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q", [4, 32], [32, 4])
             + pair("lora_unet_down_blocks_1_attentions_0_proj_in", [4, 32, 1, 1], [32, 4, 1, 1])
             + pair("lora_unet_mid_block_resnets_0_conv1", [4, 64, 3, 3], [64, 4, 1, 1])
             + pair("lora_te_text_model_encoder_layers_0_mlp_fc1", [4, 32], [37, 4])
             + ["lora_unet_down_blocks_1_attentions_0_proj_in.alpha F32",
                "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha F16 1"])
    put("lora_file", "kohya", "\n".join(kohya) + "\n")
    original = (pair("lora_unet_input_blocks_4_1_transformer_blocks_0_ff_net_0_proj", [8, 32], [256, 8])
                + pair("lora_unet_input_blocks_4_0_in_layers_2", [8, 32, 3, 3], [32, 8, 1, 1])
                + pair("lora_unet_middle_block_1_proj_out", [8, 64, 1, 1], [64, 8, 1, 1])
                + pair("lora_unet_output_blocks_5_1_transformer_blocks_0_attn2_to_out_0", [8, 32], [32, 8])
                + pair("lora_unet_output_blocks_2_0_skip_connection", [8, 128, 1, 1], [64, 8, 1, 1]))
    put("lora_file", "kohya-original", "\n".join(original) + "\n")
    peft = (pair("unet.up_blocks.1.attentions.2.transformer_blocks.0.attn1.to_k", [4, 32], [32, 4],
                 (".lora_A.weight", ".lora_B.weight"))
            + pair("text_encoder.text_model.encoder.layers.4.self_attn.out_proj", [4, 32], [32, 4],
                   (".lora_A.weight", ".lora_B.weight")))
    put("lora_file", "peft", "\n".join(peft) + "\n")
    processors = (pair("down_blocks.0.attentions.1.transformer_blocks.0.attn2.processor.to_out_lora", [4, 32], [32, 4],
                       (".down.weight", ".up.weight"))
                  + pair("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer", [4, 32],
                         [32, 4], (".down.weight", ".up.weight")))
    put("lora_file", "processors", "\n".join(processors) + "\n")
    put("lora_file", "loha", "lora_unet_mid_block_attentions_0_proj_in.hada_w1_a F16 64 4\n"
                             "lora_unet_mid_block_attentions_0_proj_in.hada_w1_b F16 4 64\n")
    put("lora_file", "sdxl", "\n".join(pair("lora_te2_text_model_encoder_layers_0_mlp_fc1", [4, 1280], [5120, 4]))
        + "\n")


def embedding_file_seeds():
    put("embedding_file", "kohya", "emb_params F32 2 32\n")
    put("embedding_file", "a1111", "string_to_param.* F16 3 768\n")
    put("embedding_file", "diffusers", "<cat-toy> BF16 768\n")
    put("embedding_file", "diffusers-multi", "<cat-toy> F32 4 32\n")
    put("embedding_file", "sd2", "emb_params F32 2 1024\n")
    put("embedding_file", "sdxl", "clip_g F16 2 1280\nclip_l F16 2 768\n")
    put("embedding_file", "lora", "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight F16 4 32\n"
                                  "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight F16 37 4\n")


def tokenizer_seeds():
    prompts = [t["prompt"] for t in json.loads((DATA / "tokens.json").read_text())]
    for i, p in enumerate(prompts[:12]):
        put("tokenizer", f"prompt-{i:02d}", p)
    put("tokenizer", "emoji", "a 🐶 wearing a 🎩, ❤️‍🔥 café Ünïcode ＦＵＬＬ")
    put("tokenizer", "invalid-utf8", b"a \xff\xfe dog \xc3 \xe2\x82 \xed\xa0\x80 cat\x00end")
    put("tokenizer", "long", " ".join(["photograph"] * 120))
    put("tokenizer", "weights", "(masterpiece:1.2), [cat|dog], <lora:x:0.5>, 1girl, 4k, it's we'll")


def png(width, height, color_type, bit_depth, rows, extra=(), interlace=0):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, body in extra:
        out += chunk(kind, body)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def image_seeds():
    rgb = [bytes((x * 60, y * 80, 128)) for y in range(3) for x in range(4)]
    rows = [b"".join(rgb[y * 4:(y + 1) * 4]) for y in range(3)]
    params = b"parameters\x00a dog\nSteps: 20, Sampler: Euler a, Seed: 1"
    put("image", "rgb.png", png(4, 3, 2, 8, rows, [(b"tEXt", params)]))
    put("image", "rgba.png", png(2, 2, 6, 8, [b"\xff\x00\x00\x80\x00\xff\x00\xff"] * 2))
    put("image", "gray16.png", png(3, 1, 0, 16, [b"\x00\x00\x80\x00\xff\xff"]))
    put("image", "palette.png", png(4, 1, 3, 2, [b"\x1b"], [(b"PLTE", b"\x00\x00\x00\xff\x00\x00\x00\xff\x00\x00\x00\xff")]))
    put("image", "interlaced.png", png(4, 3, 2, 8, rows, interlace=1))
    bmp_rows = b"".join(rows[y] + b"\x00" * ((4 - len(rows[y]) % 4) % 4) for y in reversed(range(3)))
    put("image", "rgb.bmp", b"BM" + struct.pack("<IHHI", 54 + len(bmp_rows), 0, 0, 54) +
        struct.pack("<IiiHHIIiiII", 40, 4, 3, 1, 24, 0, len(bmp_rows), 2835, 2835, 0, 0) + bmp_rows)
    put("image", "rgb.ppm", b"P6\n4 3\n255\n" + b"".join(rows))
    put("image", "rgb.tga", struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, 4, 3, 24, 0) + b"".join(rows))


def scheduler_seeds():
    base = json.loads((DATA / "tiny-sd" / "scheduler" / "scheduler_config.json").read_text())
    names = ["lms", "pndm", "ddim", "euler", "euler_a", "dpmpp_2m"]  # byte 0 % 6, in scheduler_names() order
    for i, name in enumerate(names):
        put("scheduler_config", name, bytes([i + 6 * 3]) + json.dumps(base).encode())
    variants = {
        "karras-cosine": dict(base, use_karras_sigmas=True, beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing"),
        "trained-betas": {"num_train_timesteps": 4, "trained_betas": [0.1, 0.2, 0.3, 0.4], "prediction_type": "v_prediction"},
        "ddim-eta": dict(base, eta=0.5, clip_sample=True, clip_sample_range=1.5, set_alpha_to_one=True),
        "sample-linear": {"beta_schedule": "linear", "prediction_type": "sample", "num_train_timesteps": 50.0},
    }
    for i, (label, cfg) in enumerate(variants.items()):
        put("scheduler_config", label, bytes([(i * 7 + 2) % 256]) + json.dumps(cfg).encode())


def model_config_seeds():
    for i, part in enumerate(["text_encoder", "unet", "vae"]):
        put("model_config", part, bytes([i]) + (DATA / "tiny-sd" / part / "config.json").read_bytes())
    put("model_config", "unet-int-heads", b"\x01" + json.dumps({"attention_head_dim": 8, "layers_per_block": 1,
                                                                  "cross_attention_dim": 32}).encode())


if __name__ == "__main__":
    safetensors_seeds()
    single_file_seeds()
    vae_file_seeds()
    embedding_file_seeds()
    lora_file_seeds()
    tokenizer_seeds()
    image_seeds()
    scheduler_seeds()
    model_config_seeds()
