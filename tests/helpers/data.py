"""Whether Debian's Fashion-MNIST (the suite's real data) is installed, and the skip marker for tests that need it."""
import pytest

from timm_coded.data import find_fashion_mnist


def have_fashion_mnist() -> bool:
    try:
        find_fashion_mnist()
    except FileNotFoundError:
        return False
    return True


needs_fashion_mnist = pytest.mark.skipif(
    not have_fashion_mnist(),
    reason='needs Debian dataset-fashion-mnist (scripts/env.sh installs it: apt-get install dataset-fashion-mnist)')
