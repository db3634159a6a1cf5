import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
# The tests run many tiny tensor ops, which one thread does fastest (and a loaded 2-core machine slowest).
torch.set_num_threads(int(os.environ.get("TEST_TORCH_THREADS", "1")))


def tiny_unet(size=8, channels=3, seed=0):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4)


@pytest.fixture
def tiny_prior():
    from helpers.priors import Prior
    from helpers.schedule import NoiseSchedule

    return Prior(tiny_unet(), NoiseSchedule.linear(), name="tiny")
