"""The reference post's batched method, written plainly (run with `accelerate launch`).

What the post does, kept as it is: `split_between_processes` over the prompt
list, batches of 16 in the given order, left padding to the longest prompt
rounded up to a multiple of 8, `model.generate` per batch, the timer from a
barrier to after `gather_object`. Two changes make its number comparable:
tokens are counted through each sequence's first EOS (the post counts padding
after EOS too), and it can warm up once before the timer (the studio does).
Prints one JSON line: {"tokens", "raw_tokens", "seconds", "tokens_per_second"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def load(model_name: str, device: str, dtype):
    """tiny or arch:NAME, as the studio builds them (loading is not timed)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from runner.models import resolve_model
    from runner.paths import models_dir
    from runner.tiny import byte_tokenizer_folder, ensure_tiny

    spec = resolve_model(model_name)
    if spec.kind == "arch":
        raw = json.loads(Path(spec.path).read_text())
        model_type = raw.pop("model_type")
        raw.pop("architectures", None)
        torch.manual_seed(0)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **raw), dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(byte_tokenizer_folder(models_dir()))
    else:
        folder = ensure_tiny(spec.path) if spec.kind == "tiny" else spec.path
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tokenizer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", required=True, help="JSON file with a list of prompts")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=100)
    parser.add_argument("--fixed-length", action="store_true")
    parser.add_argument("--no-warmup", action="store_true")
    args = parser.parse_args()

    import torch
    from accelerate import Accelerator
    from accelerate.utils import gather_object

    accelerator = Accelerator(cpu=args.device == "cpu")
    if args.device == "cpu":
        torch.set_num_threads(1)
    device = accelerator.device
    prompts_all = json.loads(Path(args.prompts).read_text())
    model, tokenizer = load(args.model, device, getattr(torch, args.dtype))
    tokenizer.pad_token = tokenizer.eos_token
    eos = tokenizer.eos_token_id
    extra = {"min_new_tokens": args.max_new_tokens} if args.fixed_length else {}

    def prepare_prompts(prompts, tokenizer, batch_size=16):
        batches = [prompts[i : i + batch_size] for i in range(0, len(prompts), batch_size)]
        batches_tok = []
        tokenizer.padding_side = "left"
        for prompt_batch in batches:
            batches_tok.append(
                tokenizer(prompt_batch, return_tensors="pt", padding="longest", truncation=False,
                          pad_to_multiple_of=8, add_special_tokens=False).to(device)
            )
        tokenizer.padding_side = "right"
        return batches_tok

    if not args.no_warmup:
        with accelerator.split_between_processes(prompts_all) as prompts:
            first = prepare_prompts(prompts, tokenizer, batch_size=args.batch_size)[0]
            model.generate(**first, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)

    accelerator.wait_for_everyone()
    start = time.time()
    with accelerator.split_between_processes(prompts_all) as prompts:
        results = dict(outputs=[], num_tokens=0, raw_tokens=0)
        for prompts_tokenized in prepare_prompts(prompts, tokenizer, batch_size=args.batch_size):
            outputs_tokenized = model.generate(**prompts_tokenized, max_new_tokens=args.max_new_tokens,
                                               do_sample=False, pad_token_id=tokenizer.pad_token_id, **extra)
            outputs_tokenized = [tok_out[len(tok_in):] for tok_in, tok_out in
                                 zip(prompts_tokenized["input_ids"], outputs_tokenized)]
            for seq in outputs_tokenized:
                seq = seq.tolist()
                real = seq.index(eos) + 1 if eos in seq else len(seq)  # through the first EOS
                results["num_tokens"] += real
                results["raw_tokens"] += len(seq)
            results["outputs"].extend(tokenizer.batch_decode(outputs_tokenized))
        results = [results]
    results_gathered = gather_object(results)
    if accelerator.is_main_process:
        seconds = time.time() - start
        tokens = sum(r["num_tokens"] for r in results_gathered)
        print("@@reference " + json.dumps({"tokens": tokens, "raw_tokens": sum(r["raw_tokens"] for r in results_gathered),
                                           "seconds": seconds, "tokens_per_second": tokens / seconds}), flush=True)
    accelerator.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
