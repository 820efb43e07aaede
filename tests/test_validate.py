"""The shared argument checks: types, ranges, and messages that name the argument and the range."""
import numpy as np
import pytest

from sparsebook.validate import check_int, check_real


def test_check_int_accepts_python_and_numpy_ints_in_range():
    assert check_int(3, "k", 1, 5) == 3
    assert check_int(np.int64(7), "k", low=0) == 7 and isinstance(check_int(np.int64(7), "k", low=0), int)


@pytest.mark.parametrize("x,exc,msg", [
    (0, ValueError, r"k must be an int in \[1, 5\]; got 0"), (6, ValueError, "got 6"),
    (2.0, TypeError, "k must be an int"), (True, TypeError, "got bool"), ("3", TypeError, "got str"),
])
def test_check_int_rejects_with_named_range(x, exc, msg):
    with pytest.raises(exc, match=msg):
        check_int(x, "k", 1, 5)


def test_check_real_intervals():
    assert check_real(0.5, "s", 0, 1, high_open=True) == 0.5
    assert check_real(np.float32(2), "c", low=0, low_open=True) == 2.0
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\); got 1.0"):
        check_real(1.0, "sparsity", 0, 1, high_open=True)
    with pytest.raises(ValueError, match="c must be > 0; got 0.0"):
        check_real(0, "c", low=0, low_open=True)
    with pytest.raises(ValueError, match="finite"):
        check_real(float("nan"), "c", low=0)
    with pytest.raises(TypeError, match="c must be a real number"):
        check_real(None, "c")
    with pytest.raises(TypeError):
        check_real(False, "c")
