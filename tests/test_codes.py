"""Tests of the coding-scheme engine (timm_coded.codes): paper rules A/B/C, Algorithm 1, built-ins, errors, CLI."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from timm_coded import codes
from timm_coded.codes.__main__ import main as cli_main
from timm_coded.codes import BUILTIN_SCHEMES, CodingScheme, algorithm1, builtin, generate, generate_scheme, \
    get_scheme, tabu

# Table 4 of arXiv:2202.05343 (r = 5/10 | r = 3/10), transcribed independently of timm_coded.codes.
TABLE4 = {
    'airplane': ('1010100011', '1001001000'),
    'automobile': ('0101010101', '0110001000'),
    'bird': ('1101100010', '1010000001'),
    'cat': ('0011001101', '0000001110'),
    'deer': ('1010010101', '0001010100'),
    'dog': ('1001001110', '0010100100'),
    'frog': ('1011101000', '0000110010'),
    'horse': ('0100011110', '0100010001'),
    'ship': ('0110111000', '0001100001'),
    'truck': ('0100110011', '1100000010'),
}
# The shapes a model builds at construction (K, N, N_act).
MODEL_SHAPES = [(k, n, a) for k in (37, 42) for n, a in ((10, 5), (10, 3), (20, 8), (20, 4), (32, 16), (32, 8))]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return fn(*args, **kwargs)


def _check_rules(scheme: CodingScheme, k: int, n: int, a: int) -> None:
    """Rule A, distinctness and consistency of the reported quality with a brute-force recount."""
    cw = scheme.codewords
    assert cw.shape == (k, n) and cw.dtype == np.uint8
    assert set(np.unique(cw)) <= {0, 1}
    assert (cw.sum(axis=1) == a).all()
    assert len({r.tobytes() for r in cw}) == k
    if k >= 2:
        dist = (cw[:, None, :] != cw[None, :, :]).sum(-1) + np.eye(k, dtype=int) * (n + 1)
        assert scheme.min_distance == dist.min()
    np.testing.assert_array_equal(scheme.column_sums, cw.sum(axis=0))


# --- built-ins -----------------------------------------------------------------------------------------
@pytest.mark.parametrize('name,col', [('cifar10_r5_10', 0), ('cifar10_r3_10', 1)])
def test_table4_equals_paper(name, col):
    scheme = BUILTIN_SCHEMES[name]
    assert scheme.to_strings() == [v[col] for v in TABLE4.values()]
    assert scheme.class_names == tuple(TABLE4)
    assert scheme.min_distance == 4  # "Hmin = 4 for both" (App. A, pair horse-ship)
    horse, ship = list(TABLE4).index('horse'), list(TABLE4).index('ship')
    assert (scheme.codewords[horse] != scheme.codewords[ship]).sum() == 4
    assert scheme.s_min == scheme.s_max == (5 if col == 0 else 3)


def test_table4_fingerprints_are_stable():
    assert BUILTIN_SCHEMES['cifar10_r5_10'].fingerprint() == (
        '826a6d4eb372dfe47c843d77f79687e53b800c6f7e1ec22f445c9de8480a1a58')
    assert BUILTIN_SCHEMES['cifar10_r3_10'].fingerprint() == (
        'd50293a6d648590818b54550ab50d131c33d55579f33657e95e4c6bae6755154')


@pytest.mark.parametrize('name,shape,hmin,max_spread', [
    ('cifar100_r8_20', (100, 20, 8), 8, 0),
    ('cifar100_r4_20', (100, 20, 4), 4, 0),
    ('imagenet_r16_32', (1000, 32, 16), 10, 2),
    ('imagenet_r8_32', (1000, 32, 8), 6, 2),
])
def test_builtin_quality_targets(name, shape, hmin, max_spread):
    scheme = BUILTIN_SCHEMES[name]
    _check_rules(scheme, *shape)
    assert scheme.min_distance >= hmin
    assert scheme.s_max - scheme.s_min <= max_spread
    assert get_scheme(*shape) is BUILTIN_SCHEMES[name] or get_scheme(*shape) == BUILTIN_SCHEMES[name]


@pytest.mark.parametrize('name', sorted(builtin._GENERATED))
def test_frozen_files_equal_generator(name):
    data = json.loads(builtin._schemes_dir().joinpath(f'{name}.json').read_text(encoding='utf-8'))
    fresh = generate_scheme(**data['generator'])
    assert fresh.to_strings() == data['codewords']
    assert fresh.fingerprint() == data['fingerprint'] == BUILTIN_SCHEMES[name].fingerprint()


def test_builtins_mapping_and_json_files():
    assert set(BUILTIN_SCHEMES) == {'cifar10_r5_10', 'cifar10_r3_10', 'cifar100_r8_20', 'cifar100_r4_20',
                                    'imagenet_r16_32', 'imagenet_r8_32'}
    for name, scheme in BUILTIN_SCHEMES.items():
        assert scheme.name == name
        assert CodingScheme.from_json(scheme.to_json()) == scheme
    assert get_scheme(10, 10, 5) is get_scheme(10, 10, 5)
    assert get_scheme(10, 10, 3).name == 'cifar10_r3_10'


# --- generator ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('k,n,a,d', [(6, 6, 3, 2), (5, 6, 2, 2), (4, 8, 4, 4), (6, 7, 3, 4)])
def test_algorithm1_literal_and_generator(k, n, a, d):
    """Algorithm 1 as printed meets rules A, B (best spread among G's subsets) and C (H_min >= d); the generator
    reaches at least its distance and its balance."""
    paper = algorithm1(k, n, a, d)
    _check_rules(paper, k, n, a)
    assert paper.min_distance >= d
    ours = _quiet(generate_scheme, k, n, a)
    _check_rules(ours, k, n, a)
    assert ours.min_distance >= paper.min_distance
    assert ours.s_max - ours.s_min <= paper.s_max - paper.s_min
    assert algorithm1(20, 6, 3, 4) is None  # fewer than K words at distance 4: line 18 gives up


def test_generate_is_deterministic_in_process():
    for args in [(37, 10, 3), (100, 20, 8), (42, 32, 8), (12, 10, 3), (30, 10, 5)]:
        a, b = _quiet(generate_scheme, *args), _quiet(generate_scheme, *args)
        assert a == b and a.fingerprint() == b.fingerprint()


@pytest.mark.slow
def test_generate_is_deterministic_across_processes():
    # (50, 40, 8) goes through the structured (shortened BCH) and the pseudo-random pools, (13, 10, 3),
    # (36, 10, 5) and (15, 20, 8) through the tabu search. The package is loaded from its files (numpy only)
    # so the subprocesses do not pay for importing torch and timm.
    shapes = [(37, 10, 3), (100, 20, 4), (50, 40, 8), (13, 10, 3), (36, 10, 5), (15, 20, 8)]
    code = ('import importlib.util, os, sys, warnings; warnings.simplefilter("ignore"); '
            f'spec = importlib.util.spec_from_file_location("codes_copy", {codes.__file__!r}, '
            f'submodule_search_locations=[os.path.dirname({codes.__file__!r})]); '
            'm = importlib.util.module_from_spec(spec); sys.modules["codes_copy"] = m; spec.loader.exec_module(m); '
            f'print([m.generate_scheme(*s).fingerprint() for s in {shapes!r}])')
    outs = set()
    for seed in ('0', '12345'):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        res = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, check=True)
        outs.add(res.stdout.strip())
    local = str([_quiet(generate_scheme, *s).fingerprint() for s in shapes])
    assert outs == {local}


@pytest.mark.timeout(120)
@pytest.mark.parametrize('k,n,a', MODEL_SHAPES)
def test_get_scheme_model_shapes(k, n, a):
    scheme = _quiet(get_scheme, k, n, a)
    _check_rules(scheme, k, n, a)
    assert scheme.s_max - scheme.s_min <= 1  # ideal balance: r*K is fractional for most of these
    assert scheme.min_distance >= 2


@pytest.mark.parametrize('k,n,a,hmin', [(37, 32, 16, 16), (42, 32, 16, 16), (100, 20, 8, 8), (37, 20, 8, 8)])
def test_generate_reaches_known_distances(k, n, a, hmin):
    assert _quiet(generate_scheme, k, n, a).min_distance >= hmin


# --- rule C beyond the lexicode (tabu search) ---------------------------------------------------------
# A(10, 4, 3) = 13 and A(10, 4, 5) = 36 (Johnson's bound, reached): the lexicode of Algorithm 1 only packs
# 10 and 22 words, so the old generator fell back to H_min = 2 for 11..13 and 23..36 classes.
@pytest.mark.parametrize('k,n,a,hmin', [(11, 10, 3, 4), (12, 10, 3, 4), (13, 10, 3, 4), (36, 10, 5, 4),
                                        (26, 10, 5, 4), (30, 10, 4, 4), (26, 20, 10, 10), (28, 20, 4, 6)])
def test_tabu_search_reaches_the_bound(k, n, a, hmin):
    scheme = _quiet(generate_scheme, k, n, a)
    _check_rules(scheme, k, n, a)
    assert scheme.min_distance == hmin == generate._distance_upper_bound(k, n, a)
    assert generate._search(k, n, a, 2, 0)[1] < hmin  # the lexicode search alone falls short
    ideal = generate._ideal_spread(k, n, a)
    assert scheme.s_max - scheme.s_min <= ideal + generate._MAX_EXTRA_SPREAD
    if (k, n, a) == (36, 10, 5):
        assert scheme.s_min == scheme.s_max == 18  # an optimal code: every subNN works for half the classes


@pytest.mark.parametrize('n,a,ks', [(10, 3, range(2, 41)), (10, 4, range(2, 41)), (10, 5, range(2, 61))])
def test_n10_reaches_the_upper_bound_for_every_k(n, a, ks):
    """N = 10 (CIFAR-style nets): H_min equals the (here tight) upper bound for every K tried."""
    for k in ks:
        scheme = _quiet(generate_scheme, k, n, a)
        assert scheme.min_distance == generate._distance_upper_bound(k, n, a), k


# Shapes where Algorithm 1 already reaches the bound (kept bit for bit) or does not (improved), incl. the
# model shapes. `generate._search(..., 2, seed)` is exactly the previous generator's default search.
SAMPLE_SHAPES = [(12, 10, 3), (37, 10, 3), (37, 10, 5), (20, 10, 5), (15, 20, 8), (37, 20, 8), (100, 20, 8),
                 (25, 20, 4), (37, 20, 4), (14, 20, 10), (60, 20, 10), (21, 12, 6), (40, 12, 4), (17, 16, 4),
                 (64, 16, 8), (37, 32, 16), (100, 32, 8), (30, 15, 5), (50, 24, 6)]


@pytest.mark.parametrize('k,n,a', SAMPLE_SHAPES)
def test_never_worse_than_the_lexicode_search(k, n, a):
    scheme = _quiet(generate_scheme, k, n, a)
    _check_rules(scheme, k, n, a)
    old_words, old_d = generate._search(k, n, a, 2, 0)
    assert scheme.min_distance >= old_d
    assert scheme.s_max - scheme.s_min <= generate._ideal_spread(k, n, a) + generate._MAX_EXTRA_SPREAD
    if old_d == generate._distance_upper_bound(k, n, a):  # nothing to improve: the same codewords
        assert scheme == generate._scheme_from_words(old_words, n)


def test_explicit_min_distance_reached_by_tabu_search():
    s = _quiet(generate_scheme, 12, 10, 3, min_distance=4)
    assert s.min_distance == 4 and s.s_max - s.s_min == 1
    assert s == _quiet(generate_scheme, 12, 10, 3)
    with pytest.raises(ValueError, match=r'min_distance = 6 cannot be reached.*reaches is 4 \(upper bound 4\)'):
        _quiet(generate_scheme, 12, 10, 3, min_distance=6)


def test_distance_traded_for_balance_only_when_asked():
    # The lexicode at distance 8 is S(3, 6, 22): 77 words on 22 of the 24 columns. The distance-8 codes
    # found leave two subNNs under-used, so by default the generator keeps the balanced distance-6 scheme;
    # min_distance=8 gets the distance anyway.
    default = _quiet(generate_scheme, 75, 24, 6)
    assert default.min_distance == 6 and default.s_max - default.s_min == 1
    forced = _quiet(generate_scheme, 75, 24, 6, min_distance=8)
    assert forced.min_distance == 8 and forced.s_max - forced.s_min > 1 + generate._MAX_EXTRA_SPREAD


def test_tabu_results_are_pinned():
    """Same arguments, same codewords on every machine and numpy version (checkpoints store the bits)."""
    assert _quiet(generate_scheme, 12, 10, 3).fingerprint() == (
        'ce96e1724483f671c75d4428e90f6a29e4dd80ac1ef5d319a9209c72b99a83df')
    assert generate_scheme(36, 10, 5).fingerprint() == (
        'd64d598445d9428f6df2f0bf29e6ee5894a8282d5a40ca3b023a1b7caf264642')
    assert generate_scheme(26, 20, 10).fingerprint() == (
        '32d15ae214b18eb9efbc94aaaa624590b70fc70e749baad9882029ffb86d2a58')


@pytest.mark.parametrize('n,d,w,exact', [(10, 4, 3, 13), (10, 4, 4, 30), (10, 4, 5, 36), (12, 4, 6, 132),
                                         (16, 8, 8, 30), (32, 16, 16, 62), (10, 6, 5, 6), (9, 4, 3, 12)])
def test_johnson_bound_matches_known_exact_values(n, d, w, exact):
    assert generate._johnson_bound(n, d, w) == exact


def test_johnson_bound_is_valid_for_small_codes():
    """Brute force: the largest code of every tiny (n, d, w) never exceeds the bound."""
    def largest(words, d):
        best = 0
        def grow(size, rest):
            nonlocal best
            best = max(best, size)
            for i, w in enumerate(rest):
                if size + len(rest) - i <= best:
                    return
                grow(size + 1, [x for x in rest[i + 1:] if bin(x ^ w).count('1') >= d])
        grow(0, list(words))
        return best
    for n in range(4, 8):
        for w in range(1, n):
            words = [x for x in range(1 << n) if bin(x).count('1') == w]
            for d in (4, 6):
                assert largest(words, d) <= generate._johnson_bound(n, d, w), (n, d, w)


def test_search_helpers():
    assert [tabu._luby(i) for i in range(15)] == [1, 1, 2, 1, 1, 2, 4, 1, 1, 2, 1, 1, 2, 4, 8]
    orders = tabu._search_orders(120, 0, (1, 2))
    first = [next(orders) for _ in range(5)]
    assert (first[0] == np.arange(120)).all()
    for order in first:
        assert sorted(order.tolist()) == list(range(120))
    assert len({o.tobytes() for o in first}) == 5


def test_get_scheme_small_and_plain():
    empty = get_scheme(0, 32, 8)
    assert empty.codewords.shape == (0, 32) and empty.num_active == 8 and empty.num_classes == 0
    one = _quiet(get_scheme, 1, 10, 3)
    _check_rules(one, 1, 10, 3)
    assert one.min_distance == 10  # documented value when there is no pair
    plain = get_scheme(5, 8, 8)
    assert plain.codewords.shape == (5, 8) and plain.codewords.all() and plain.ratio == 1.0


def test_min_distance_argument():
    s = generate_scheme(100, 20, 8, min_distance=6)
    assert s.min_distance >= 6
    with pytest.raises(ValueError, match=r'min_distance = 10 cannot be reached.*best the generator reaches is 8'):
        generate_scheme(100, 20, 8, min_distance=10)


# --- errors and warnings ---------------------------------------------------------------------------------
@pytest.mark.parametrize('a', [0, 11, -1])
def test_num_active_out_of_range(a):
    with pytest.raises(ValueError, match=rf'N_act = {a} is outside 1\.\.N = 1\.\.10'):
        generate_scheme(10, 10, a)
    with pytest.raises(ValueError, match='outside 1..N'):
        get_scheme(10, 10, a)


def test_not_enough_codewords():
    with pytest.raises(ValueError, match=r'C\(10, 5\) = 252 < K = 1000.*larger N'):
        get_scheme(1000, 10, 5)
    with pytest.raises(ValueError, match=r'C\(10, 3\) = 120 < K = 121'):
        generate_scheme(121, 10, 3)


def _count_rk_warnings(fn, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        fn(*args)
    return sum('is not an integer' in str(w.message) for w in caught)


def test_fractional_rk_warns_once_per_generation(capsys):
    assert _count_rk_warnings(generate_scheme, 12, 10, 3) == 1  # tabu-search path
    assert _count_rk_warnings(get_scheme, 19, 10, 3) == 1  # get_scheme -> generate_scheme (not cached yet)
    assert _count_rk_warnings(get_scheme, 19, 10, 3) == 0  # cached
    assert _count_rk_warnings(cli_main, ['-K', '11', '-N', '10', '-A', '3', '--min-distance', '4']) == 1
    assert _count_rk_warnings(cli_main, ['-K', '12', '-N', '10', '-A', '3', '--min-distance', '6']) == 1
    capsys.readouterr()


def test_fractional_rk_warns():
    with pytest.warns(UserWarning, match=r'r\*K = 3/10 \* 37 = 11.1 is not an integer'):
        generate_scheme(37, 10, 3)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        generate_scheme(40, 10, 3)  # 3/10 * 40 = 12: no warning


@pytest.mark.parametrize('rows,match', [
    (['0101', '011'], 'Ragged'),
    ([[0, 1, 1], [1, 1]], 'Ragged'),
    (['0102', '0110'], 'not binary'),
    ([[0, 2], [1, 0]], 'not binary'),
    (np.array([[0.5, 0.5], [1, 0]]), 'not binary'),
    (['0110', '0111'], 'Rule A violated: codeword 1 has 3 ones but codeword 0 has 2'),
    (['0110', '1001', '0110'], 'Duplicate codewords: rows 0 and 2'),
    (['0000', '0000'], 'N_act = 0 is outside'),
    ([], 'empty'),
    (np.zeros((2, 2, 2)), '2-D'),
])
def test_from_codewords_validation(rows, match):
    with pytest.raises(ValueError, match=match):
        CodingScheme.from_codewords(rows)


def test_from_codewords_inputs_agree():
    import torch
    strings = TABLE4_R5 = [v[0] for v in TABLE4.values()]
    a = CodingScheme.from_codewords(strings)
    b = CodingScheme.from_codewords([[int(c) for c in s] for s in TABLE4_R5])
    c = CodingScheme.from_codewords(a.codewords.astype(np.float32))
    d = CodingScheme.from_codewords(torch.tensor(a.codewords, dtype=torch.uint8))
    assert a == b == c == d and hash(a) == hash(d)
    assert a != BUILTIN_SCHEMES['cifar10_r5_10']  # names / class names differ ...
    assert a.fingerprint() == BUILTIN_SCHEMES['cifar10_r5_10'].fingerprint()  # ... the bits do not
    with pytest.raises(ValueError, match='class_names has 3 entries'):
        CodingScheme.from_codewords(strings, class_names=['a', 'b', 'c'])


# --- the value object ----------------------------------------------------------------------------------
def test_scheme_accessors():
    s = BUILTIN_SCHEMES['cifar10_r3_10']
    assert (s.num_classes, s.num_subnns, s.num_active) == (10, 10, 3)
    assert s.ratio == pytest.approx(0.3) and s.ratio_str == '3/10'
    assert s.to_strings()[0] == '1001001000'
    q = s.quality()
    assert (q['min_distance'], q['s_min'], q['s_max']) == (4, 3, 3)
    with pytest.raises(ValueError):
        s.codewords[0, 0] = 1  # read-only
    with pytest.raises(AttributeError):
        s.name = 'x'  # frozen
    assert CodingScheme.from_json(json.dumps(s.to_json())) == s
    assert len({s, CodingScheme.from_json(s.to_json())}) == 1


def test_empty_scheme_roundtrip():
    empty = get_scheme(0, 20, 4)
    back = CodingScheme.from_json(empty.to_json())
    assert back == empty and back.num_active == 4
    assert empty.fingerprint() == back.fingerprint()


# --- CLI ------------------------------------------------------------------------------------------------
def _cli(*args):
    """The real `python -m timm_coded.codes` (a subprocess: slow, it imports torch via the package)."""
    return subprocess.run([sys.executable, '-m', 'timm_coded.codes', *args], capture_output=True, text=True)


def _main(capsys, *args):
    """The CLI's main in-process: (exit code, stdout, stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        rc = cli_main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.slow
def test_cli_subprocess_json_and_error():
    res = _cli('--classes', '37', '--subnns', '10', '--active', '3', '--json')
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)  # exactly one JSON document on stdout
    assert isinstance(out, dict) and len(out['codewords']) == 37
    res = _cli('--classes', '1000', '--subnns', '10', '--active', '5')
    assert res.returncode != 0 and res.stdout == ''
    assert 'C(10, 5) = 252' in res.stderr and 'Traceback' not in res.stderr


def test_cli_json_is_one_object(capsys):
    rc, out, _ = _main(capsys, '--classes', '37', '--subnns', '10', '--active', '3', '--json')
    assert rc == 0
    obj = json.loads(out)
    assert isinstance(obj, dict)
    for key in ('codewords', 'min_distance', 'column_sums', 'K', 'N', 'N_act', 's_min', 's_max', 'seconds'):
        assert key in obj
    assert len(obj['codewords']) == 37 and all(len(w) == 10 and w.count('1') == 3 for w in obj['codewords'])
    assert sum(obj['column_sums']) == 37 * 3 and obj['min_distance'] >= 2


def test_cli_text_builtin_and_list(capsys):
    rc, out, _ = _main(capsys, '--builtin', 'cifar10_r5_10')
    assert rc == 0 and '1010100011  airplane' in out and 'min distance 4' in out
    rc, out, _ = _main(capsys, '--list')
    assert rc == 0 and 'imagenet_r16_32' in out
    rc, out, _ = _main(capsys, '-K', '10', '-N', '10', '-A', '5')
    assert rc == 0 and 'S_min 5, S_max 5' in out and len(out.splitlines()) == 12


@pytest.mark.parametrize('args,match', [
    (('--classes', '1000', '--subnns', '10', '--active', '5'), 'C(10, 5) = 252'),
    (('--classes', '10', '--subnns', '10', '--active', '0'), 'outside 1..N'),
    (('--classes', '100', '--subnns', '20', '--active', '8', '--min-distance', '12'), 'best the generator'),
    (('--builtin', 'nope'), 'No built-in scheme'),
])
def test_cli_errors(capsys, args, match):
    rc, out, err = _main(capsys, *args)
    assert rc != 0 and out == ''
    assert match in err and 'Traceback' not in err


def test_cli_min_distance_reached_by_tabu_search(capsys):
    rc, out, err = _main(capsys, '-K', '12', '-N', '10', '-A', '3', '--min-distance', '4', '--json')
    assert rc == 0, err
    obj = json.loads(out)
    assert obj['min_distance'] == 4 and len(obj['codewords']) == 12


def test_cli_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(['--classes', '10'])
    assert exc.value.code != 0 and '--subnns' in capsys.readouterr().err
