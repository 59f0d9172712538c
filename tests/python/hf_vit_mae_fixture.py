"""Writes the Hugging Face ViTMAE oracle for tests/model/hf_parity_test.cpp.

For each norm_pix_loss setting it builds a small ViTMAEForPreTraining configured like the paper
(LayerNorm eps 1e-6, exact GELU, qkv bias) with a seeded random init, runs it on seeded images
with a given noise tensor, back-propagates the loss, and saves three safetensors files:
  hf_<tag>_weights.safetensors  the state dict under Hugging Face names
  hf_<tag>_io.safetensors       pixel_values, noise, logits, loss, mask, ids_restore
  hf_<tag>_grads.safetensors    the gradient of every trainable parameter, Hugging Face names
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import ViTMAEConfig, ViTMAEForPreTraining

# Shared with the C++ test: keep in step with kParityOptions there.
CONFIG = dict(
    image_size=32, patch_size=4, num_channels=3,
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
    decoder_hidden_size=32, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
    decoder_intermediate_size=128,
    mask_ratio=0.75, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True,
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
)
BATCH = 3


def write(out_dir: str, norm_pix_loss: bool) -> None:
    tag = "normpix" if norm_pix_loss else "pixels"
    torch.manual_seed(1234 + int(norm_pix_loss))
    config = ViTMAEConfig(norm_pix_loss=norm_pix_loss, **CONFIG)
    model = ViTMAEForPreTraining(config).float()
    # transformers 5.24 leaves both fixed sin-cos tables at zero on a fresh model (its init
    # hook returns early); run Hugging Face's own initializers so the tables are the real ones.
    model.vit.embeddings.patch_embeddings.projection._is_hf_initialized = False
    with torch.no_grad():
        model.vit.embeddings.initialize_weights()
        model.decoder.initialize_weights(model.vit.embeddings.patch_embeddings.num_patches)
    assert model.vit.embeddings.position_embeddings.abs().sum() > 0
    assert model.decoder.decoder_pos_embed.abs().sum() > 0
    model.train()
    gen = torch.Generator().manual_seed(99 + int(norm_pix_loss))
    pixel_values = torch.randn(BATCH, 3, 32, 32, generator=gen)
    num_patches = (32 // 4) ** 2
    noise = torch.rand(BATCH, num_patches, generator=gen)

    out = model(pixel_values=pixel_values, noise=noise)
    out.loss.backward()

    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, os.path.join(out_dir, f"hf_{tag}_weights.safetensors"))
    io = {
        "pixel_values": pixel_values.contiguous(),
        "noise": noise.contiguous(),
        "logits": out.logits.detach().contiguous(),
        "loss": out.loss.detach().reshape(1).contiguous(),
        "mask": out.mask.detach().contiguous(),
        "ids_restore": out.ids_restore.detach().to(torch.int64).contiguous(),
    }
    save_file(io, os.path.join(out_dir, f"hf_{tag}_io.safetensors"))
    grads = {k: p.grad.detach().contiguous() for k, p in model.named_parameters() if p.grad is not None}
    save_file(grads, os.path.join(out_dir, f"hf_{tag}_grads.safetensors"))
    # A whole Hugging Face model folder (config.json + model.safetensors), as published models
    # come, for `maestro viz recon --checkpoint`.
    model.save_pretrained(os.path.join(out_dir, f"hf_{tag}_model"))
    print(f"{tag}: loss {out.loss.item():.6f}, {len(weights)} weights, {len(grads)} grads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(1)
    for norm_pix_loss in (False, True):
        write(args.out_dir, norm_pix_loss)


if __name__ == "__main__":
    main()
