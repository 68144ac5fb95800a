"""The Vulkan device behind ONNX Runtime's WebGpuExecutionProvider, for the row's
accelerator_device and software_accelerator. ORT's WebGPU provider (Dawn) does not say which
adapter it took, in its API or its log (checked with 1.27 at verbose severity), where LiteRT logs
"Selected adapter". So the agent asks the Vulkan loader itself (ctypes, no new dependency) for
its physical devices and names the one Dawn prefers: a discrete GPU, then an integrated one,
then a virtual one, a CPU device (llvmpipe, SwiftShader) last. A CPU device is a software GPU,
whose timings say nothing about real hardware. Dawn's backend is Vulkan on Linux only (Metal,
Direct3D 12 elsewhere): None there, and wherever the loader cannot answer."""
from __future__ import annotations

import ctypes
import sys

# VkPhysicalDeviceType -> (Dawn's preference, the word the row uses)
DEVICE_TYPES = {2: (0, "discrete GPU"), 1: (1, "integrated GPU"), 3: (2, "virtual GPU"),
                0: (3, "other"), 4: (4, "CPU")}
CPU_TYPE = 4
PROPERTIES_BYTES = 4096  # VkPhysicalDeviceProperties is 824 bytes; only its head is read
NAME_OFFSET, NAME_BYTES = 20, 256  # after apiVersion, driverVersion, vendorID, deviceID, type
_CACHE = {}


class _InstanceCreateInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_int), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("pApplicationInfo", ctypes.c_void_p), ("enabledLayerCount", ctypes.c_uint32),
                ("ppEnabledLayerNames", ctypes.c_void_p),
                ("enabledExtensionCount", ctypes.c_uint32),
                ("ppEnabledExtensionNames", ctypes.c_void_p)]


def physical_devices() -> list:
    """[(name, VkPhysicalDeviceType)] of the Vulkan devices this process can see."""
    vk = ctypes.CDLL("libvulkan.so.1")
    vk.vkCreateInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    vk.vkEnumeratePhysicalDevices.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    vk.vkGetPhysicalDeviceProperties.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    vk.vkDestroyInstance.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    info = _InstanceCreateInfo(sType=1)  # VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO
    instance = ctypes.c_void_p()
    if vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance)) != 0:
        return []
    try:
        count = ctypes.c_uint32(0)
        vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
        handles = (ctypes.c_void_p * count.value)()
        if count.value == 0 or vk.vkEnumeratePhysicalDevices(
                instance, ctypes.byref(count), handles) not in (0, 5):  # VK_SUCCESS, VK_INCOMPLETE
            return []
        devices = []
        for handle in handles[:count.value]:
            props = ctypes.create_string_buffer(PROPERTIES_BYTES)
            vk.vkGetPhysicalDeviceProperties(ctypes.c_void_p(handle), props)
            kind = ctypes.c_uint32.from_buffer(props, 16).value
            name = props.raw[NAME_OFFSET:NAME_OFFSET + NAME_BYTES].split(b"\0", 1)[0]
            devices.append((name.decode("utf-8", "replace"), kind))
        return devices
    finally:
        vk.vkDestroyInstance(instance, None)


def webgpu_adapter():
    """(description, software?) of the device Dawn would pick, or (None, None)."""
    if "adapter" not in _CACHE:
        found = (None, None)
        if sys.platform.startswith("linux"):
            try:
                devices = physical_devices()
            except Exception:  # no loader, no driver: ORT's own start then says what is wrong
                devices = []
            if devices:
                name, kind = min(devices, key=lambda d: DEVICE_TYPES.get(d[1], (9, ""))[0])
                word = DEVICE_TYPES.get(kind, (9, "type %d" % kind))[1]
                found = ("%s, Vulkan %s" % (name, word), kind == CPU_TYPE)
        _CACHE["adapter"] = found
    return _CACHE["adapter"]
