""" Hugging Face Hub round trip (hub_cards), with stock clients on the other side.

The session's trained checkpoint -> the main job's export stage (`python -m hub_cards.push --dry-run`) and a push
to a local stand-in of the Hub's upload API -> the files, a repo pushed by stock `timm.models.push_to_hf_hub`, and
broken copies (one defect each) become git repos served by a real olah mirror on 127.0.0.1 -> fresh processes load
`hf-hub:ORG/NAME` with stock `timm.create_model` (after `import timm_coded`) and with `create_model_from_hub`;
then again offline from the cache. Uploads run with HF_HUB_DISABLE_XET=1 (the stand-in speaks classic LFS).
"""
import hashlib
import importlib.util
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

import numpy as np
import pytest
import safetensors
import safetensors.torch
import torch
from huggingface_hub import ModelCard

import timm
import timm_coded
from timm_coded.checkpoint import CheckpointError, model_from_checkpoint
from timm_coded.data import FASHION_MNIST_CLASSES
from train_hooks.main_job import REPO_ID, export_command

from hub_cards import create_model_from_hub, push_binary_classifier, push_checkpoint
from hub_cards.card import binary_classifier_card, coded_model_card, validate_metrics
from hub_cards.export import save_for_hub
from hub_cards.push import main as push_main
from helpers import ROOT
from helpers.hub_standin import HubStandIn

pytestmark = pytest.mark.slow

HELPERS = Path(__file__).resolve().parent / 'helpers'
TOKEN = 'hf_standin_write_token'
REPO = 'acme/coded-tiny'
UPLOAD = {'README.md', 'config.json', 'model.safetensors'}
METRICS = dict(dataset='fashion_mnist', split='test', num_samples=200, top1=69.5,
               early_decoders={'layer2.0': 55.0, 'layer3.0': 67.0},
               binary_classifiers={'mean': {'precision': 60.1, 'recall': 70.2, 'f1': 64.3}},
               notes='Numbers handed in by tests/test_hub.py.')


def _hub_env(tmp: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HUGGING'))}
    env.update(HF_HOME=str(tmp / 'hf_home'), HF_HUB_DISABLE_TELEMETRY='1', OMP_NUM_THREADS='1', **extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# --- fixtures: checkpoint -> export / push -> olah ---------------------------------------------------------
@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    """The main job's export stage on the session checkpoint, and the checkpoint model's reference logits."""
    tmp = tmp_path_factory.mktemp('export')
    (tmp / 'metrics.json').write_text(json.dumps(METRICS))
    proc = subprocess.run(export_command(Path(trained.coded), tmp / 'metrics.json', tmp / 'export'), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, _, _ = model_from_checkpoint(trained.coded)
    x = trained.test[0][:8].clone()
    with torch.no_grad():
        ref = dict(x=x, logits=model(x))
    torch.save(ref, tmp / 'ref.pt')
    return SimpleNamespace(dir=tmp / 'export', metrics=tmp / 'metrics.json', ref=ref, ref_path=tmp / 'ref.pt',
                           model=model)


@pytest.fixture(scope='module')
def hub():
    standin = HubStandIn(TOKEN).start()
    yield standin
    standin.stop()


@pytest.fixture(scope='module')
def pushed(trained, exported, hub, tmp_path_factory):
    """`python -m hub_cards.push` in a fresh process, as a user runs it; the files that arrived."""
    tmp = tmp_path_factory.mktemp('push')
    cmd = [sys.executable, '-m', 'hub_cards.push', '--checkpoint', str(trained.coded), '--repo-id', REPO,
           '--token', TOKEN, '--metrics', str(exported.metrics), '--label-names', ','.join(FASHION_MNIST_CLASSES)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=_hub_env(tmp, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET='1'))
    assert proc.returncode == 0, proc.stderr
    assert f'pushed to {hub.endpoint}/{REPO}/commit/' in proc.stdout
    return dict(hub.repos[REPO].files)


@pytest.fixture(scope='module')
def stock_pushed(trained, hub, tmp_path_factory):
    """The same model pushed by stock `timm.models.push_to_hf_hub` (no timm_coded entry, pickle and safetensors)."""
    tmp = tmp_path_factory.mktemp('stock')
    code = ('import sys, timm, timm_coded; from timm_coded.checkpoint import model_from_checkpoint; '
            'model = model_from_checkpoint(sys.argv[1])[0]; '
            'timm.models.push_to_hf_hub(model, "acme/stock", token=sys.argv[2])')
    proc = subprocess.run([sys.executable, '-c', code, str(trained.coded), TOKEN], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=_hub_env(tmp, HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(hub.repos['acme/stock'].files)


def _flip_in_fc(weights: bytes) -> bytes:
    """A same-size corruption: one byte of fc.weight's data changed."""
    header = json.loads(weights[8:8 + int.from_bytes(weights[:8], 'little')])
    start = 8 + int.from_bytes(weights[:8], 'little') + header['fc.weight']['data_offsets'][0]
    data = bytearray(weights)
    data[start + 3] ^= 0x7f
    return bytes(data)


def _variants(files: dict, stock: dict) -> dict:
    """The pushed repo, the stock one, and broken copies, one defect each."""
    config = json.loads(files['config.json'])
    ratios = json.loads(files['config.json'])
    ratios['model_args']['coding_ratios'] = ['10/10', '5/10', '4/10']
    books = json.loads(files['config.json'])
    rows = [s.to_strings() for k, s in timm.create_model('coded_resnext29_10x11d').coding_schemes().items()
            if k == 'r3_10'][0]
    books['model_args']['codebooks'] = {'3/10': [rows[1], rows[0]] + rows[2:]}
    weights = files['model.safetensors']
    assert 'timm_coded' in config
    return {
        'coded-tiny': files,
        'stock': stock,
        'no-config': {k: v for k, v in files.items() if k != 'config.json'},
        'no-weights': {k: v for k, v in files.items() if k != 'model.safetensors'},
        'truncated': dict(files, **{'model.safetensors': weights[:len(weights) // 2]}),
        'bitflip': dict(files, **{'model.safetensors': _flip_in_fc(weights)}),
        'edited-ratios': dict(files, **{'config.json': json.dumps(ratios).encode()}),
        'edited-codebooks': dict(files, **{'config.json': json.dumps(books).encode()}),
    }


def _git_repo(path: Path, files: dict) -> None:
    path.mkdir(parents=True)
    for name, data in files.items():
        (path / name).write_bytes(data)
    git = ['git', '-c', 'user.name=test', '-c', 'user.email=test@localhost', '-c', 'init.defaultBranch=main']
    for args in (['init', '-q'], ['add', '-A'], ['commit', '-q', '-m', 'export']):
        subprocess.run(git + args, cwd=path, check=True, capture_output=True)


@pytest.fixture(scope='module')
def olah(pushed, stock_pushed, tmp_path_factory):
    """A real olah server (offline mirror mode) serving git repos made from the pushed files."""
    if importlib.util.find_spec('olah') is None:
        pytest.fail('olah (the Hub mirror the download tests serve from) is a test dependency: pip install -e .[test]')
    tmp = tmp_path_factory.mktemp('olah')
    for name, files in _variants(pushed, stock_pushed).items():
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
def downloaded(exported, olah, hub_home):
    names = ['coded-tiny', 'stock', 'no-config', 'no-weights', 'truncated', 'bitflip', 'edited-ratios',
             'edited-codebooks', 'never-pushed']
    cases = [f'{kind}:hf-hub:acme/{name}' for name in names for kind in ('stock', 'helper')]
    return _client(exported.ref_path, hub_home, _hub_env(hub_home, HF_ENDPOINT=olah), cases)


# --- the export and the upload -------------------------------------------------------------------------------
def test_push_uploads_exactly_the_main_jobs_export(trained, exported, hub, pushed):
    """The stand-in received README, config and LFS weights: byte for byte the main job's export folder."""
    assert set(pushed) == UPLOAD and {p.name for p in exported.dir.iterdir()} == UPLOAD
    for name in ('config.json', 'model.safetensors'):
        assert (exported.dir / name).read_bytes() == pushed[name], name
    card = (exported.dir / 'README.md').read_text()  # the same card, but for the main job's repo id
    card = card.replace(REPO_ID, REPO).replace(REPO_ID.split('/')[-1], REPO.split('/')[-1])
    assert card == pushed['README.md'].decode()
    assert hub.unknown == []
    assert hub.repos[REPO].commits[-1]['summary'] == 'Add Coded ResNeXt checkpoint'
    assert hashlib.sha256(pushed['model.safetensors']).hexdigest() in hub.lfs  # weights went through LFS
    config = json.loads(pushed['config.json'])
    assert config['architecture'] == 'coded_resnext29_10x11d'
    assert config['timm_coded'] == {'version': timm_coded.__version__, 'weights_sha256': {
        'model.safetensors': hashlib.sha256(pushed['model.safetensors']).hexdigest()}}
    assert config['model_args']['coding_ratios'] == ['10/10', '5/10', '3/10'] and not config['model_args']['codebooks']
    assert config['model_args']['layers'] == [1, 1, 1] and config['pretrained_cfg']['input_size'] == [1, 28, 28]
    assert config['label_names'] == list(FASHION_MNIST_CLASSES)
    with safetensors.safe_open(str(exported.dir / 'model.safetensors'), 'pt') as f:
        assert f.metadata() == {'format': 'pt'}
    weights = safetensors.torch.load(pushed['model.safetensors'])
    for name, value in exported.model.state_dict().items():
        assert torch.equal(weights[name], value), name


def test_round_trip_stock_timm_and_helper(downloaded):
    """Stock timm (after `import timm_coded`) and the helper rebuild the model; the helper loads stock pushes."""
    for case in ('stock:hf-hub:acme/coded-tiny', 'helper:hf-hub:acme/coded-tiny', 'stock:hf-hub:acme/stock',
                 'helper:hf-hub:acme/stock'):
        result = downloaded[case]
        assert result.get('ok') and result['same_logits'], (case, result)


def test_helper_errors_name_the_cause(downloaded):
    expect = {
        'never-pushed': ('FileNotFoundError', 'Hub repo acme/never-pushed not found'),
        'no-config': ('FileNotFoundError', 'has no config.json'),
        'no-weights': ('FileNotFoundError', 'has a config.json but no weights'),
        'truncated': ('CheckpointError', 'Corrupt or truncated checkpoint'),
        'bitflip': ('CheckpointError', 'differs from the sha256 recorded in config.json'),
        'edited-ratios': ('ValueError', 'config.json does not describe its weights'),
        'edited-ratios ': ('ValueError', 'Unexpected key(s) in state_dict: "codebooks.r3_10"'),
        'edited-codebooks': ('ValueError', 'Codebook mismatch for ratio 3/10: class 0: checkpoint'),
    }
    for name, (error, message) in expect.items():
        result = downloaded[f'helper:hf-hub:acme/{name.strip()}']
        assert result.get('error') == error and message in result['message'], (name, result)
    # what stock timm does with the same-size corruption the helper catches: it loads, with other logits
    assert downloaded['stock:hf-hub:acme/bitflip'].get('ok') and not downloaded['stock:hf-hub:acme/bitflip'][
        'same_logits']


def test_offline_cache_loading(exported, downloaded, hub_home):
    """HF_HUB_OFFLINE=1 and an unreachable endpoint: the cache from the online run is enough."""
    env = _hub_env(hub_home, HF_ENDPOINT=f'http://127.0.0.1:{_free_port()}', HF_HUB_OFFLINE='1')
    report = _client(exported.ref_path, hub_home, env, ['stock:hf-hub:acme/coded-tiny', 'helper:hf-hub:acme/coded-tiny',
                                                        'helper:hf-hub:acme/never-downloaded'])
    for case in ('stock:hf-hub:acme/coded-tiny', 'helper:hf-hub:acme/coded-tiny'):
        assert report[case].get('ok') and report[case]['same_logits'], report
    missing = report['helper:hf-hub:acme/never-downloaded']
    assert missing['error'] == 'FileNotFoundError' and 'not in the local Hugging Face cache' in missing['message']


def test_local_dir_helper_and_fine_tuning(exported, tmp_path):
    model = create_model_from_hub(f'local-dir:{exported.dir}').eval()
    with torch.no_grad():
        assert torch.equal(model(exported.ref['x']), exported.ref['logits'])
    with pytest.warns(UserWarning, match='fine-tuning to a new class count'):
        tuned = timm.create_model(f'local-dir:{exported.dir}', pretrained=True, num_classes=5)  # stock timm
    assert tuned.num_classes == 5 and tuned.codebooks.get('r3_10').shape == (5, 10)
    with pytest.raises(FileNotFoundError, match='No folder'):
        create_model_from_hub(f'local-dir:{tmp_path / "nope"}')
    with pytest.raises(ValueError, match='Repo id'):
        create_model_from_hub('hf-hub:acme/a/b')


# --- the card ----------------------------------------------------------------------------------------------------
def test_card_front_matter_and_install_first(pushed):
    card = ModelCard(pushed['README.md'].decode())
    assert card.data.library_name == 'timm' and card.data.model_name == 'coded-tiny'
    assert card.data.datasets == ['fashion_mnist']
    results = {r.metric_name: (r.metric_type, r.metric_value, r.dataset_split) for r in card.data.eval_results}
    assert results['top1 accuracy'] == ('accuracy', 69.5, 'test')
    assert results['early decoder layer3.0 accuracy'] == ('accuracy', 67.0, 'test')
    assert results['binary classifiers (mean) f1'] == ('f1', 64.3, 'test')
    body = card.text
    first_code = body[body.index('```'):]
    assert first_code.startswith(f'```bash\npip install "timm-coded=={timm_coded.__version__}"')
    assert body.index('import timm, timm_coded') < body.index('## Model details')
    assert '| 0: T-shirt/top |' in body and 'Avranas' in body


def _run_snippets(card: ModelCard, repo_id: str, folder: Path, tmp: Path, channels: int) -> dict:
    """Execute the card's Python usage blocks against the exported folder and a real image file."""
    from PIL import Image
    image = (np.random.default_rng(0).random((40, 40, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp / 'image.png')
    blocks = re.findall(r'```python\n(.*?)```', card.text.split('## Usage')[1], flags=re.S)
    assert len(blocks) == 3  # classification, feature maps, embeddings
    scope = {}
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        for code in blocks:
            exec(code.replace(f'hf-hub:{repo_id}', f'local-dir:{folder}'), scope)
    finally:
        os.chdir(cwd)
    assert f'this model takes {channels}-channel images' in card.text
    return scope


def test_usage_snippets_run_for_one_and_three_channel_models(exported, tmp_path):
    scope = _run_snippets(ModelCard.load(exported.dir / 'README.md'), REPO_ID, exported.dir, tmp_path, 1)
    assert scope['probs'].shape == (1, 10) and len(scope['early']) == 2
    assert scope['embedding'].shape == (1, 256) and len(list(scope['model'].parameters()))
    rgb = timm.create_model('coded_resnext11_10x4d').eval()  # 3 channels
    card = coded_model_card(rgb, 'acme/rgb', (3, 28, 28))
    folder = save_for_hub(rgb, tmp_path / 'rgb', card)
    scope = _run_snippets(card, 'acme/rgb', folder, tmp_path, 3)
    assert scope['probs'].shape == (1, 10) and scope['embedding'].shape == (1, 256)


def test_card_without_facts_invents_none(trained, tmp_path):
    """A bare state_dict and no metrics: no Training / Results sections and no model-index."""
    model, _, _ = model_from_checkpoint(trained.coded)
    weights = tmp_path / 'weights.safetensors'
    safetensors.torch.save_file(model.state_dict(), str(weights))
    out = tmp_path / 'bare'
    kwargs = [f'{k}={v}' for k, v in trained.kwargs.items()] + ['in_chans=1']
    assert push_main(['--checkpoint', str(weights), '--repo-id', 'acme/bare', '--model', trained.arch,
                      '--model-kwargs', *kwargs, '--dry-run', str(out)]) == 0
    card = ModelCard.load(out / 'README.md')
    assert '## Results' not in card.text and '## Training' not in card.text
    assert card.data.eval_results is None and card.data.datasets is None


def test_binary_classifier_card(exported):
    from timm_coded.analyze import count_parameters, extract_binary_classifier
    bc = extract_binary_classifier(exported.model, 8)
    card = binary_classifier_card(bc, REPO, 'acme/coded-tiny-bag', (1, 28, 28), class_name='Bag',
                                  metrics={'precision': 93.5, 'recall': 77.25})
    assert card.data.library_name == 'timm' and 'binary-classification' in card.data.tags
    assert 'class 8 (Bag)' in card.text and '| precision | 93.5 |' in card.text
    share = 100 * count_parameters(bc) / count_parameters(exported.model)
    assert f'({share:.1f} % of the parent\'s)' in card.text
    for block, keep in bc.kept_subnns.items():
        assert f'| `{block}` | {", ".join(map(str, keep))} |' in card.text
    with pytest.raises(ValueError, match='percentage'):
        binary_classifier_card(bc, REPO, 'acme/bc', (1, 28, 28), metrics={'precision': 935.})


def test_push_binary_classifier_with_its_card(exported, hub, monkeypatch, tmp_path):
    """A BC pushed from Python arrives with our card (not timm's generic one) and loads back to the same outputs."""
    import huggingface_hub.constants
    from timm_coded.analyze import extract_binary_classifier, load_binary_classifier
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_DISABLE_XET', True)
    bc = extract_binary_classifier(exported.model, 8)
    with pytest.raises(ValueError, match='percentage'):  # checked before anything is uploaded
        push_binary_classifier(bc, 'acme/bc-bag', 'Bag', metrics={'f1': 0.8 * 1000}, token=TOKEN,
                               endpoint=hub.endpoint)
    assert 'acme/bc-bag' not in hub.repos
    push_binary_classifier(bc, 'acme/bc-bag', 'Bag', parent=REPO, metrics={'f1': 80.5}, token=TOKEN,
                           endpoint=hub.endpoint)
    files = hub.repos['acme/bc-bag'].files
    assert set(files) == UPLOAD
    card = ModelCard(files['README.md'].decode())
    assert 'binary-classification' in card.data.tags and 'class 8 (Bag)' in card.text
    assert f'from the Coded ResNeXt `{REPO}`' in card.text and '| f1 | 80.5 |' in card.text
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    x = exported.ref['x']
    with torch.no_grad():
        torch.testing.assert_close(load_binary_classifier(str(tmp_path))(x), bc(x))


def test_metrics_schema():
    assert validate_metrics({'top1': 91.5, 'early_decoders': {'layer3.0': 80}}) == \
        {'top1': 91.5, 'early_decoders': {'layer3.0': 80}}
    with pytest.raises(ValueError, match='unknown key'):
        validate_metrics({'top_1': 91.5})
    with pytest.raises(ValueError, match='percentage'):
        validate_metrics({'top1': 0.915 * 1000})
    with pytest.raises(ValueError, match='keys from'):
        validate_metrics({'binary_classifiers': {'mean': {'auc': 90.}}})


# --- push errors: each refused before anything is written or uploaded ----------------------------------------
@pytest.mark.parametrize('repo_id', ['acme/coded/tiny', 'acme/--x', 'ac me/tiny', '/tiny', 'acme/'])
def test_malformed_repo_id(trained, hub, repo_id, tmp_path):
    before = len(hub.requests)
    with pytest.raises(ValueError):
        push_checkpoint(trained.coded, repo_id, token=TOKEN, endpoint=hub.endpoint)
    assert len(hub.requests) == before and not any(tmp_path.iterdir())


def test_missing_and_rejected_token(trained, hub, monkeypatch, tmp_path):
    import huggingface_hub.constants
    for var in ('HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_OIDC_RESOURCE'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_TOKEN_PATH', str(tmp_path / 'no-token'))
    with pytest.raises(PermissionError, match='--token'):
        push_checkpoint(trained.coded, 'acme/other', endpoint=hub.endpoint)
    with pytest.raises(PermissionError, match='refused the token'):
        push_checkpoint(trained.coded, 'acme/other', token='hf_wrong', endpoint=hub.endpoint)
    assert 'acme/other' not in hub.repos


def test_existing_card_is_kept_unless_asked(trained, hub, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_DISABLE_XET', True)
    hand = b'---\nlicense: mit\n---\n# Written by hand\n'
    hub.commit('acme/hand-written', {'README.md': hand})
    commits = len(hub.repos['acme/hand-written'].commits)
    with pytest.raises(FileExistsError, match='--overwrite-card'):
        push_checkpoint(trained.coded, 'acme/hand-written', token=TOKEN, endpoint=hub.endpoint)
    assert len(hub.repos['acme/hand-written'].commits) == commits
    push_checkpoint(trained.coded, 'acme/hand-written', token=TOKEN, endpoint=hub.endpoint, keep_card=True)
    files = hub.repos['acme/hand-written'].files
    assert files['README.md'] == hand and set(files) == UPLOAD
    push_checkpoint(trained.coded, 'acme/hand-written', token=TOKEN, endpoint=hub.endpoint, overwrite_card=True)
    assert b'library_name: timm' in files['README.md'] and hub.unknown == []


class _Opens:
    """Unpickling this object would create the file `path`: a stand-in for code hidden in a checkpoint."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, 'w')


def test_checkpoint_errors_write_nothing(trained, tmp_path, capsys):
    truncated = tmp_path / 'truncated.pth.tar'
    truncated.write_bytes(Path(trained.coded).read_bytes()[:5000])
    marker = tmp_path / 'code-ran'
    unsafe = tmp_path / 'unsafe.pth.tar'
    torch.save(dict(torch.load(trained.coded, weights_only=False), extra=_Opens(str(marker))), unsafe)
    cases = [(tmp_path / 'nope.pth.tar', 'not found'), (truncated, 'Corrupt or truncated checkpoint'),
             (unsafe, 'outside the allow-list (io.open)')]
    for i, (path, message) in enumerate(cases):
        with pytest.raises(CheckpointError, match=re.escape(message)):
            push_checkpoint(path, REPO, dry_run=tmp_path / f'out{i}')
        assert push_main(['--checkpoint', str(path), '--repo-id', REPO, '--dry-run', str(tmp_path / 'cli')]) == 2
        assert capsys.readouterr().err.startswith('error: ')
    assert not marker.exists() and not any((tmp_path / n).exists() for n in ('out0', 'out1', 'out2', 'cli'))
    other = {'3/10': list(reversed(timm.create_model('coded_resnext29_10x11d').coding_schemes()['r3_10'].to_strings()))}
    with pytest.raises(ValueError, match='Codebook mismatch for ratio 3/10'):
        push_checkpoint(trained.coded, REPO, dry_run=tmp_path / 'd', model_kwargs={'codebooks': other})
    (tmp_path / 'e').mkdir()
    (tmp_path / 'e' / 'keep.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not an empty folder'):
        push_checkpoint(trained.coded, REPO, dry_run=tmp_path / 'e')
    assert [p.name for p in (tmp_path / 'e').iterdir()] == ['keep.txt'] and not (tmp_path / 'd').exists()


def test_pretrained_file_errors_name_the_file(trained, tmp_path):
    truncated = tmp_path / 'truncated.pth.tar'
    truncated.write_bytes(Path(trained.coded).read_bytes()[:5000])
    with pytest.raises(CheckpointError, match=f'Corrupt or truncated checkpoint {re.escape(str(truncated))}'):
        timm.create_model(trained.arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(truncated)))


def test_registered_tags_have_no_invented_weights():
    """Pretrained tags get an hf_hub_id only once real weights are published; none are yet."""
    names = timm.list_models(module='coded_resnext', include_tags=True)
    assert names
    for name in names:
        cfg = timm.models.get_pretrained_cfg(name)
        assert not (cfg.hf_hub_id or cfg.url or cfg.file), name
