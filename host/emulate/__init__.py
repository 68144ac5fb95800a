"""Emulated arm64 devices: a Debian userland under qemu-user with its own sshd, alone in a network
namespace, so the real ARM deploy path runs on a machine without a board.

    from edgebench.host.emulate import start, stop
    dev = start("bookworm")            # builds or restores the image, returns a DeviceState
    deploy(bundle, [dev.spec()], "results",
           options=ConnectOptions(known_hosts=dev.known_hosts))
    stop(dev.name)                      # power cut; stop(dev.name, purge=True) also wipes its disk

Timings from these devices are for correctness only: qemu-user runs CNN inference hundreds of
times slower than a real board. The agent marks their rows `emulated`."""
from edgebench.host.emulate.build import ensure_image, image_info
from edgebench.host.emulate.device import (
    DeviceState, device_dir, is_running, load_state, start, status, stop,
)
from edgebench.host.emulate.images import (
    IMAGES, ImageRecipe, cache_root, describe_images, get_image,
)

__all__ = ["DeviceState", "IMAGES", "ImageRecipe", "cache_root", "describe_images", "device_dir",
           "ensure_image", "get_image", "image_info", "is_running", "load_state", "start",
           "status", "stop"]
