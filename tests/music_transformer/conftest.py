"""One intra-op thread for these tests: tiny tensors on a shared 2-core machine run many times
faster without OpenMP threads spinning against other processes."""
import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
