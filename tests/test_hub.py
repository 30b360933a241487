""" Hugging Face Hub round trip for Coded ResNeXt checkpoints (hub_cards).

train briefly (timm CheckpointSaver) -> `python -m hub_cards.push` to a local stand-in of the Hub's upload API
-> the files that arrived become a git repo served by a real olah mirror on 127.0.0.1 -> a fresh process loads
`hf-hub:ORG/NAME` (HF_ENDPOINT, temporary HF_HOME) -> same logits and codebooks; then again with HF_HUB_OFFLINE=1
from the cache. The stand-in answers like the Hub for LFS weights; the Xet upload protocol is not modelled, so
uploads run with huggingface_hub's HF_HUB_DISABLE_XET=1 (classic LFS, which the Hub also accepts).
"""
import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

import timm
import timm_coded
from timm.utils import CheckpointSaver
from timm_coded.data import FASHION_MNIST_CLASSES, FashionMNIST, balanced_indices
from train_hooks.task import CodedClassificationTask

from hub_cards.cards import bc_facts, binary_classifier_card, validate_metrics
from hub_cards.errors import (CardExistsError, CodebookMismatchError, CorruptWeightsError, HubAuthError,
                              MissingTokenError, MissingWeightsError, PickleRefusedError, RepoIdError)
from hub_cards.load import create_model_from_hub
from hub_cards.push import main as push_main, push_checkpoint
from helpers.data import needs_fashion_mnist
from helpers.hub_standin import HubStandIn

pytestmark = needs_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
HELPERS = Path(__file__).resolve().parent / 'helpers'
TOKEN = 'hf_standin_write_token'
REPO = 'acme/coded-tiny'
ARCH = 'coded_resnext29_10x11d'
TINY = dict(layers=(1, 1, 1), channels=(16, 32, 64), cardinality=10, base_width=16)
MEAN, STD = (0.286,), (0.353,)
LABELS = ','.join(FASHION_MNIST_CLASSES)
UPLOAD = {'README.md', 'config.json', 'codebooks.json', 'model.safetensors'}


def _tensors(ds: FashionMNIST):
    x = torch.from_numpy(ds.images.copy()).float().div(255.).sub(MEAN[0]).div(STD[0]).unsqueeze(1)
    return x, torch.from_numpy(ds.targets)


def _codebooks(model) -> dict:
    return {s.ratio_str: s.to_strings() for s in model.coding_schemes().values()}


@contextlib.contextmanager
def _one_thread():
    """Single-threaded torch: the loading process computes so too (same kernels, same bits), and on a busy
    2-core machine one thread trains the tiny model several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _logits_1thread(model, x):
    with _one_thread(), torch.no_grad():
        return model.eval()(x)


def _hub_env(tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HUGGING'))}
    env.update(HF_HOME=str(tmp / 'hf_home'), HF_HUB_DISABLE_TELEMETRY='1', OMP_NUM_THREADS='1', **extra)
    return env


# --- fixtures: train -> checkpoint -> push -> olah ---------------------------------------------------------
@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny Coded ResNeXt trained 12 steps on Fashion-MNIST, saved by timm's CheckpointSaver, measured."""
    out = tmp_path_factory.mktemp('train')
    torch.manual_seed(0)
    full = FashionMNIST(split='train', in_chans=1)
    x_train, y_train = _tensors(FashionMNIST(split='train', in_chans=1, indices=balanced_indices(full.targets, 40)))
    test = FashionMNIST(split='test', in_chans=1)
    x_test, y_test = _tensors(FashionMNIST(split='test', in_chans=1, indices=balanced_indices(test.targets, 20)))
    args = argparse.Namespace(  # the train.py arguments that matter here, as timm's CheckpointSaver stores them
        model=ARCH, model_kwargs=dict(TINY), num_classes=10, in_chans=1, input_size=(1, 28, 28), img_size=None,
        mean=MEAN, std=STD, gp=None, dataset='torch/fashion_mnist', epochs=1, batch_size=32, opt='sgd', lr=0.05,
        momentum=0.9, weight_decay=5e-4, smoothing=0.0, eval_metric='top1', seed=0)
    model = timm.create_model(ARCH, num_classes=10, in_chans=1, **TINY)
    task = CodedClassificationTask(model, torch.nn.CrossEntropyLoss(), verbose=False)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    gen = torch.Generator().manual_seed(0)
    model.train()
    with _one_thread():
        for _ in range(12):
            idx = torch.randint(len(y_train), (args.batch_size,), generator=gen)
            loss = task(x_train[idx], y_train[idx])['loss']
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with _one_thread(), torch.no_grad():
        scores = timm_coded.early_decode(model, x_test)
        top1 = 100. * (model(x_test).argmax(1) == y_test).float().mean().item()
    names = model.coded_block_names()
    metrics = dict(dataset='fashion_mnist', split='test', num_samples=len(y_test), top1=top1,
                   early_decoders={n: 100. * (s.argmax(1) == y_test).float().mean().item()
                                   for n, s in zip(names, scores)},
                   notes='Class-balanced subset of the test split, measured by tests/test_hub.py.')
    metrics_path = out / 'results.json'
    metrics_path.write_text(json.dumps(metrics))
    saver = CheckpointSaver(model, opt, args=args, checkpoint_dir=str(out), recovery_dir=str(out), task=task)
    saver.save_checkpoint(epoch=0, metric=top1)
    ref = dict(x=x_test[:8].clone(), logits=_logits_1thread(model, x_test[:8]), codebooks=_codebooks(model))
    torch.save(ref, out / 'ref.pt')
    return SimpleNamespace(dir=out, ckpt=out / 'model_best.pth.tar', model=model, metrics=metrics,
                           metrics_path=metrics_path, ref=ref, ref_path=out / 'ref.pt', args=args)


@pytest.fixture(scope='module')
def hub():
    standin = HubStandIn(TOKEN).start()
    yield standin
    standin.stop()


@pytest.fixture(scope='module')
def pushed(trained, hub, tmp_path_factory):
    """`python -m hub_cards.push` in a fresh process, as a user runs it; returns the files that arrived."""
    tmp = tmp_path_factory.mktemp('push')
    cmd = [sys.executable, '-m', 'hub_cards.push', '--checkpoint', str(trained.ckpt), '--repo-id', REPO,
           '--token', TOKEN, '--metrics', str(trained.metrics_path), '--label-names', LABELS]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_hub_env(tmp, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET='1'))
    assert proc.returncode == 0, proc.stderr
    assert f'pushed to {hub.endpoint}/{REPO}/commit/' in proc.stdout
    return dict(hub.repos[REPO].files)


def _git_repo(path: Path, files: dict) -> None:
    path.mkdir(parents=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    git = ['git', '-c', 'user.name=test', '-c', 'user.email=test@localhost', '-c', 'init.defaultBranch=main']
    for args in (['init', '-q'], ['add', '-A'], ['commit', '-q', '-m', 'export']):
        subprocess.run(git + args, cwd=path, check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _variants(files: dict) -> dict:
    """The pushed repo plus broken copies, one defect each."""
    swapped = json.loads(files['codebooks.json'])
    rows = swapped['schemes']['3/10']['codewords']
    rows[0], rows[1] = rows[1], rows[0]
    bad_config = json.loads(files['config.json'])
    rows = bad_config['model_args']['codebooks']['3/10']
    rows[0], rows[1] = rows[1], rows[0]
    pickle_config = json.loads(files['config.json'])
    del pickle_config['pretrained_cfg']['hf_hub_filename']
    pickled = io.BytesIO()
    torch.save(safetensors.torch.load(files['model.safetensors']), pickled)
    weights = files['model.safetensors']
    meta = {k: files[k] for k in ('README.md', 'config.json', 'codebooks.json')}
    return {
        'coded-tiny': files,
        'bad-codebooks-json': dict(files, **{'codebooks.json': json.dumps(swapped).encode()}),
        'bad-config': dict(files, **{'config.json': json.dumps(bad_config).encode()}),
        'no-weights': meta,
        'corrupt': dict(files, **{'model.safetensors': weights[:len(weights) // 2]}),
        'pickle-only': dict(meta, **{'config.json': json.dumps(pickle_config).encode(),
                                     'pytorch_model.bin': pickled.getvalue()}),
    }


@pytest.fixture(scope='module')
def olah(pushed, tmp_path_factory):
    """A real olah server (offline mirror mode) serving git repos made from the pushed files."""
    if importlib.util.find_spec('olah') is None:
        pytest.fail('olah (the Hub mirror the download tests serve from) is a test dependency: pip install -e .[test]')
    tmp = tmp_path_factory.mktemp('olah')
    for name, files in _variants(pushed).items():
        _git_repo(tmp / 'mirrors' / 'models' / 'acme' / name, files)
    port = _free_port()
    (tmp / 'olah.toml').write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nrepos-path = "{tmp / "cache"}"\n'
        f'mirrors-path = ["{tmp / "mirrors"}"]\n[accessibility]\noffline = true\n')
    log = open(tmp / 'olah.out', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'olah.server', '-c', str(tmp / 'olah.toml'),
                             '--log-path', str(tmp / 'logs')], cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f'http://127.0.0.1:{port}'
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f'{endpoint}/{REPO}/resolve/main/config.json', timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f'olah did not start: {(tmp / "olah.out").read_text()[-2000:]}')
                time.sleep(0.3)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _client(ref_path: Path, tmp: Path, env: dict, cases: list) -> dict:
    report = tmp / f'report-{len(list(tmp.glob("report-*")))}.json'
    proc = subprocess.run([sys.executable, str(HELPERS / 'hub_client.py'), str(ref_path), str(report), *cases],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(report.read_text())


@pytest.fixture(scope='module')
def hub_home(tmp_path_factory):
    return tmp_path_factory.mktemp('user')


@pytest.fixture(scope='module')
def downloaded(trained, olah, hub_home):
    cases = [f'plain:hf-hub:{REPO}', f'helper:hf-hub:{REPO}', 'plain:hf-hub:acme/bad-config',
             'helper:hf-hub:acme/bad-config', 'helper:hf-hub:acme/bad-codebooks-json', 'helper:hf-hub:acme/no-weights',
             'helper:hf-hub:acme/corrupt', 'helper:hf-hub:acme/pickle-only', 'pickle:hf-hub:acme/pickle-only']
    return _client(trained.ref_path, hub_home, _hub_env(hub_home, HF_ENDPOINT=olah), cases)


# --- round trip ------------------------------------------------------------------------------------------
def test_push_uploads_exactly_the_dry_run_folder(trained, hub, pushed, tmp_path):
    """The stand-in received README, config, codebooks and LFS weights: byte for byte what --dry-run writes."""
    assert set(pushed) == UPLOAD
    assert hub.unknown == []
    assert hub.repos[REPO].commits[-1]['summary'] == 'Add Coded ResNeXt checkpoint'
    assert hashlib.sha256(pushed['model.safetensors']).hexdigest() in hub.lfs  # weights went through the LFS protocol
    out = tmp_path / 'dry'
    assert push_main(['--checkpoint', str(trained.ckpt), '--repo-id', REPO, '--metrics', str(trained.metrics_path),
                      '--label-names', LABELS, '--dry-run', str(out)]) == 0
    assert {p.name for p in out.iterdir()} == UPLOAD
    for name in UPLOAD:
        assert (out / name).read_bytes() == pushed[name], name

    config = json.loads(pushed['config.json'])
    assert config['architecture'] == ARCH
    assert config['model_args']['codebooks'] == trained.ref['codebooks']
    assert config['model_args']['coding_ratios'] == ['10/10', '5/10', '3/10']
    assert config['pretrained_cfg']['hf_hub_filename'] == 'model.safetensors'
    assert config['pretrained_cfg']['input_size'] == [1, 28, 28]
    assert config['label_names'] == list(FASHION_MNIST_CLASSES)
    doc = json.loads(pushed['codebooks.json'])
    assert {r: s['codewords'] for r, s in doc['schemes'].items()} == trained.ref['codebooks']
    assert doc['blocks'] == {'layer2.0': '5/10', 'layer3.0': '3/10'}
    weights = safetensors.torch.load(pushed['model.safetensors'])
    for name, value in trained.model.state_dict().items():
        assert torch.equal(weights[name], value), name


def test_round_trip_hf_hub_identical_logits_and_codebooks(downloaded):
    """Plain timm (after `import timm_coded`) and the checked helper both rebuild the trained model."""
    for case in (f'plain:hf-hub:{REPO}', f'helper:hf-hub:{REPO}'):
        result = downloaded[case]
        assert result.get('ok'), result
        assert result['same_logits'], result
        assert result['same_codebooks'], result


def test_hub_load_errors(downloaded):
    r = downloaded
    assert r['plain:hf-hub:acme/bad-config']['error'] == 'RuntimeError'
    assert 'Codebook mismatch' in r['plain:hf-hub:acme/bad-config']['message']
    assert r['helper:hf-hub:acme/bad-config']['error'] == 'CodebookMismatchError'
    assert r['helper:hf-hub:acme/bad-codebooks-json']['error'] == 'CodebookMismatchError'
    assert 'codebooks.json' in r['helper:hf-hub:acme/bad-codebooks-json']['message']
    assert r['helper:hf-hub:acme/no-weights']['error'] == 'MissingWeightsError'
    assert 'no weights' in r['helper:hf-hub:acme/no-weights']['message']
    assert r['helper:hf-hub:acme/corrupt']['error'] == 'CorruptWeightsError'
    assert 'truncated or corrupt' in r['helper:hf-hub:acme/corrupt']['message']
    assert r['helper:hf-hub:acme/pickle-only']['error'] == 'PickleRefusedError'
    assert 'allow_pickle=True' in r['helper:hf-hub:acme/pickle-only']['message']
    allowed = r['pickle:hf-hub:acme/pickle-only']
    assert allowed.get('ok') and allowed['same_logits'] and allowed['same_codebooks'], allowed


def test_offline_cache_loading(trained, downloaded, hub_home):
    """HF_HUB_OFFLINE=1 and an unreachable endpoint: the cache from the online run is enough."""
    env = _hub_env(hub_home, HF_ENDPOINT=f'http://127.0.0.1:{_free_port()}', HF_HUB_OFFLINE='1')
    report = _client(trained.ref_path, hub_home, env,
                     [f'plain:hf-hub:{REPO}', f'helper:hf-hub:{REPO}', 'helper:hf-hub:acme/never-downloaded'])
    for case in (f'plain:hf-hub:{REPO}', f'helper:hf-hub:{REPO}'):
        assert report[case].get('ok') and report[case]['same_logits'] and report[case]['same_codebooks'], report
    missing = report['helper:hf-hub:acme/never-downloaded']
    assert missing['error'] == 'MissingWeightsError' and 'not in the local Hugging Face cache' in missing['message']


# --- push errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize('repo_id', ['coded-tiny', 'acme/coded/tiny', 'acme/--x', 'ac me/tiny', '/tiny', 'acme/',
                                     'acme/x.'])
def test_malformed_repo_id(trained, hub, repo_id, tmp_path):
    before = len(hub.requests)
    with pytest.raises(RepoIdError, match='Malformed repo id'):
        push_checkpoint(trained.ckpt, repo_id, token=TOKEN, endpoint=hub.endpoint)
    assert len(hub.requests) == before  # refused before any request
    assert not any(tmp_path.iterdir())


def test_cli_reports_errors(trained, capsys):
    assert push_main(['--checkpoint', str(trained.ckpt), '--repo-id', 'no-org', '--dry-run', 'x']) == 2
    assert 'error: Malformed repo id' in capsys.readouterr().err


def test_missing_and_rejected_token(trained, hub, monkeypatch, tmp_path):
    import huggingface_hub.constants
    for var in ('HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_OIDC_RESOURCE'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_TOKEN_PATH', str(tmp_path / 'no-token'))
    with pytest.raises(MissingTokenError, match='--token'):
        push_checkpoint(trained.ckpt, 'acme/other', endpoint=hub.endpoint)
    with pytest.raises(HubAuthError, match='refused the token'):
        push_checkpoint(trained.ckpt, 'acme/other', token='hf_wrong', endpoint=hub.endpoint)
    assert 'acme/other' not in hub.repos


def test_existing_card_is_kept_unless_asked(trained, hub, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_DISABLE_XET', True)
    hub.commit('acme/hand-written', {'README.md': b'---\nlicense: mit\n---\n# Written by hand\n'})
    commits = len(hub.repos['acme/hand-written'].commits)
    with pytest.raises(CardExistsError, match='--overwrite-card'):
        push_checkpoint(trained.ckpt, 'acme/hand-written', token=TOKEN, endpoint=hub.endpoint)
    assert len(hub.repos['acme/hand-written'].commits) == commits  # nothing uploaded
    push_checkpoint(trained.ckpt, 'acme/hand-written', token=TOKEN, endpoint=hub.endpoint, keep_card=True)
    files = hub.repos['acme/hand-written'].files
    assert files['README.md'] == b'---\nlicense: mit\n---\n# Written by hand\n'
    assert set(files) == UPLOAD
    push_checkpoint(trained.ckpt, 'acme/hand-written', token=TOKEN, endpoint=hub.endpoint, overwrite_card=True)
    assert files['README.md'].startswith(b'---\ntags:\n- image-classification\n- timm\n')
    assert hub.unknown == []


def test_checkpoint_errors(trained, tmp_path):
    with pytest.raises(MissingWeightsError, match='not found'):
        push_checkpoint(tmp_path / 'nope.pth.tar', REPO, dry_run=tmp_path / 'a')
    truncated = tmp_path / 'truncated.pth.tar'
    truncated.write_bytes(trained.ckpt.read_bytes()[:5000])
    with pytest.raises(CorruptWeightsError, match='truncated, corrupt'):
        push_checkpoint(truncated, REPO, dry_run=tmp_path / 'b')
    raw = torch.load(trained.ckpt, weights_only=False)
    raw['args'] = _Opaque()
    tricky = tmp_path / 'pickled.pth.tar'
    torch.save(raw, tricky)
    with pytest.raises(PickleRefusedError, match='--allow-pickle'):
        push_checkpoint(tricky, REPO, dry_run=tmp_path / 'c', model_name=ARCH, model_kwargs=dict(TINY))
    assert push_checkpoint(tricky, REPO, dry_run=tmp_path / 'c', model_name=ARCH, model_kwargs=dict(TINY),
                           allow_pickle=True).is_dir()
    other = {'3/10': list(reversed(trained.ref['codebooks']['3/10']))}
    with pytest.raises(CodebookMismatchError, match='Codebook mismatch'):
        push_checkpoint(trained.ckpt, REPO, dry_run=tmp_path / 'd', model_kwargs={'codebooks': other})
    assert not (tmp_path / 'a').exists() and not (tmp_path / 'b').exists() and not (tmp_path / 'd').exists()
    (tmp_path / 'e').mkdir()
    (tmp_path / 'e' / 'keep.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not an empty folder'):
        push_checkpoint(trained.ckpt, REPO, dry_run=tmp_path / 'e')
    assert [p.name for p in (tmp_path / 'e').iterdir()] == ['keep.txt']


class _Opaque:
    """A pickled object that is not a tensor nor argparse.Namespace."""


def test_local_dir_loading_checks(trained, pushed, tmp_path):
    """The helper on local folders: safe load, then each defect of _variants named in its error."""
    variants = _variants(pushed)
    for name, files in variants.items():
        (tmp_path / name).mkdir()
        for fname, data in files.items():
            (tmp_path / name / fname).write_bytes(data)
    model = create_model_from_hub(f'local-dir:{tmp_path / "coded-tiny"}')
    assert torch.equal(_logits_1thread(model, trained.ref['x']), trained.ref['logits'])
    assert _codebooks(model) == trained.ref['codebooks']
    expect = {'bad-codebooks-json': CodebookMismatchError, 'bad-config': CodebookMismatchError,
              'no-weights': MissingWeightsError, 'corrupt': CorruptWeightsError, 'pickle-only': PickleRefusedError}
    for name, error in expect.items():
        with pytest.raises(error):
            create_model_from_hub(f'local-dir:{tmp_path / name}')
    with pytest.warns(UserWarning, match='fine-tuning to a new class count'):
        fine_tuned = create_model_from_hub(f'local-dir:{tmp_path / "coded-tiny"}', num_classes=20)
    assert fine_tuned.num_classes == 20 and fine_tuned.get_codebook('r3_10').shape == (20, 10)
    with pytest.raises(RepoIdError):
        create_model_from_hub('hf-hub:acme/a/b')


# --- cards -----------------------------------------------------------------------------------------------
def _section(card: str, title: str) -> str:
    m = re.search(rf'\n## {re.escape(title)}\n(.*?)(?=\n## |\Z)', card, flags=re.S)
    return m.group(1) if m else ''


def _numbers(text: str) -> list:
    return [float(n) for n in re.findall(r'(?<![\w.`/-])\d+(?:\.\d+)?(?![\w`/])', text)]


def test_card_renders_measured_numbers(trained, pushed):
    card = pushed['README.md'].decode()
    meta = yaml.safe_load(card.split('---\n')[1])
    assert meta['library_name'] == 'timm' and meta['license'] == 'apache-2.0'
    assert meta['datasets'] == ['fashion_mnist'] and {'timm', 'image-classification'} <= set(meta['tags'])
    assert "import timm_coded" in card and f"timm.create_model('hf-hub:{REPO}', pretrained=True)" in card
    assert 'Avranas' in card and '2202.05343' in card

    model = trained.model.eval()
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    gmacs = counter.get_total_flops() / 2e9
    details = _section(card, 'Model Details')
    assert f'{params:,} parameters' in details and f'**GMACs:** {gmacs:.4g} at 28 x 28' in details

    schemes = _section(card, 'Coding schemes')
    for scheme in model.coding_schemes().values():
        assert f'| {scheme.ratio_str} |' in schemes and f'`{scheme.fingerprint()[:16]}`' in schemes
        assert f'| {scheme.min_distance} | {scheme.s_min}-{scheme.s_max} |' in schemes
    assert '| 0: T-shirt/top |' in schemes

    results = _section(card, 'Results')
    m = trained.metrics
    measured = {m['top1'], m['num_samples'], *m['early_decoders'].values()}
    found = _numbers(results)
    assert found and all(any(abs(n - v) < 5e-3 * max(1, abs(v)) for v in measured) for n in found), (found, m)
    for name, acc in m['early_decoders'].items():
        assert f'| {name} |' in results
    training = _section(card, 'Training')
    assert '| epochs | 1 |' in training and '| opt | sgd |' in training
    assert f'| checkpoint eval metric (top1) | {float(m["top1"]):.4g} |' in training or \
           f'| checkpoint eval metric (top1) | {int(m["top1"])} |' in training


def test_card_without_facts_invents_none(trained, tmp_path):
    """A bare state_dict and no metrics: no Training / Results sections, no percentages."""
    weights = tmp_path / 'weights.safetensors'
    safetensors.torch.save_file(trained.model.state_dict(), str(weights))
    kwargs = [f'{k}={v}' for k, v in TINY.items()]
    out = tmp_path / 'bare'
    assert push_main(['--checkpoint', str(weights), '--repo-id', 'acme/bare', '--model', ARCH,
                      '--model-kwargs', *kwargs, '--dry-run', str(out)]) == 0
    card = (out / 'README.md').read_text()
    assert '## Results' not in card and '## Training' not in card and '%' not in card
    assert 'datasets:' not in card.split('---\n')[1]  # no dataset named, none guessed
    model = create_model_from_hub(f'local-dir:{out}')
    assert model.num_classes == 10 and model.in_chans == 1  # read off the weights
    assert torch.equal(_logits_1thread(model, trained.ref['x']), trained.ref['logits'])


BC_FACTS = dict(parent='acme/coded-tiny', class_index=8, class_name='Bag', num_params=61234, parent_params=159178,
                codewords={'layer2.0': '0110111000', 'layer3.0': '0001100001'}, input_size=(1, 28, 28),
                metrics=dict(precision=93.5, recall=77.25, positives=20, negatives=180, dataset='fashion_mnist',
                             split='test'))


def test_binary_classifier_card():
    card = binary_classifier_card(BC_FACTS, 'acme/coded-tiny-bc8')
    meta = yaml.safe_load(card.split('---\n')[1])
    assert meta['library_name'] == 'timm' and 'binary-classification' in meta['tags']
    assert 'class 8 (Bag)' in card and '`acme/coded-tiny`' in card
    assert f'{100 * 61234 / 159178:.1f}% of the parent\'s 159,178' in card
    assert '| `layer2.0` | `0110111000` | 5/10 |' in card and '| `layer3.0` | `0001100001` | 3/10 |' in card
    assert '| precision | 93.5 |' in card and '| recall | 77.25 |' in card and '| negatives | 180 |' in card
    assert 'GMACs' not in card  # not measured, not shown
    bare = binary_classifier_card({k: v for k, v in BC_FACTS.items() if k != 'metrics'}, 'acme/bc')
    assert '## Results' not in bare and '93.5' not in bare
    with pytest.raises(ValueError, match='missing num_params'):
        binary_classifier_card({k: v for k, v in BC_FACTS.items() if k != 'num_params'}, 'acme/bc')
    with pytest.raises(ValueError, match='unknown key'):
        binary_classifier_card(dict(BC_FACTS, accuracy=99), 'acme/bc')
    with pytest.raises(ValueError, match='percentage'):
        binary_classifier_card(dict(BC_FACTS, metrics=dict(precision=0.935 * 1000)), 'acme/bc')


def test_binary_classifier_card_from_extracted_bc(trained):
    """A real BC (timm_coded.analyze): the card shows class 8's codewords and the BC's measured size."""
    from timm_coded.analyze import extract_binary_classifier
    model = trained.model.eval()
    bc = extract_binary_classifier(model, 8)
    facts = bc_facts(model, bc, REPO, input_size=(1, 28, 28), label_names=FASHION_MNIST_CLASSES)
    card = binary_classifier_card(facts, 'acme/coded-tiny-bag')
    schemes = model.coding_schemes()
    blocks = dict(model.named_modules())
    for name in model.coded_block_names():
        word = schemes[blocks[name].coding_key].to_strings()[8]
        assert facts['codewords'][name] == word and f'| `{name}` | `{word}` |' in card
    params, parent = sum(p.numel() for p in bc.parameters()), sum(p.numel() for p in model.parameters())
    assert f'{params:,} parameters, {100 * params / parent:.1f}% of the parent' in card
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        bc(torch.zeros(1, 1, 28, 28))
    assert f'**GMACs:** {counter.get_total_flops() / 2e9:.4g} at 28 x 28' in card
    assert 'class 8 (Bag)' in card and '## Results' not in card


def test_metrics_schema():
    assert validate_metrics({'top1': 91.5, 'early_decoders': {'layer3.0': 80}}) == \
           {'top1': 91.5, 'early_decoders': {'layer3.0': 80}}
    with pytest.raises(ValueError, match="unknown key"):
        validate_metrics({'top_1': 91.5})
    with pytest.raises(ValueError, match='percentage'):
        validate_metrics({'top1': 191.5})
    with pytest.raises(ValueError, match='finite number'):
        validate_metrics({'calibration': {'ece': 'low'}})


def test_registered_tags_have_no_invented_weights():
    """Pretrained tags get an hf_hub_id only once real weights are published; none are yet."""
    names = timm.list_models(module='coded_resnext', include_tags=True)
    assert names
    for name in names:
        cfg = timm.models.get_pretrained_cfg(name)
        assert not (cfg.hf_hub_id or cfg.url or cfg.file), name
