""" The user's side of a Hub download, run by tests/test_hub.py as a fresh process.

huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_OFFLINE when it is imported, so the downloads run here,
in a new interpreter started with those variables, exactly as a user's script would.

    python hub_client.py REF.pt REPORT.json CASE [CASE ...]

REF.pt holds {'x': input batch, 'logits': the trained model's logits on x}. Each CASE is 'stock:NAME'
(`import timm_coded`, then stock `timm.create_model(NAME, pretrained=True)`) or 'helper:NAME'
(`hub_cards.create_model_from_hub(NAME)`). The report maps every case to {'ok', 'same_logits'} or
{'error': class name, 'message'}.
"""
import json
import sys

import torch

import timm
import timm_coded  # noqa: F401  (what a user does before hf-hub: loading)

from hub_cards import create_model_from_hub


def run_case(case: str, ref: dict) -> dict:
    kind, _, name = case.partition(':')
    try:
        model = (timm.create_model(name, pretrained=True) if kind == 'stock' else create_model_from_hub(name)).eval()
    except Exception as e:  # the report carries the error to the test
        return dict(error=type(e).__name__, message=str(e))
    with torch.no_grad():
        logits = model(ref['x'])
    return dict(ok=True, same_logits=bool(torch.equal(logits, ref['logits'])),
                max_abs_diff=float((logits - ref['logits']).abs().max()))


def main(argv) -> int:
    ref_path, report_path, *cases = argv
    torch.set_num_threads(1)  # the reference logits were computed single-threaded too
    ref = torch.load(ref_path, weights_only=True)
    report = {case: run_case(case, ref) for case in cases}
    with open(report_path, 'w') as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
