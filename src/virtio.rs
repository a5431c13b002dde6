//! virtio-mmio devices. Being written.
