import pytest
import torch

from variants import UNetSpec


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    # Tests use tiny models that gain nothing from a second thread; on a shared, busy 2-core machine two
    # spinning threads per process made them several-fold slower. Benchmarks pin their own count.
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Two small configurations every variant is tested at: 8x8 grey and 32x32 RGB.
SMALL_SPECS = {
    "8x8x1": UNetSpec(in_dim=8, in_ch=1, out_ch=1, ch=32, ch_mult=(1, 2), attn_resolutions=(8,), norm_groups=8),
    "32x32x3": UNetSpec(in_dim=32, in_ch=3, out_ch=3, ch=16, ch_mult=(1, 2, 2), attn_resolutions=(16,), norm_groups=8),
}
