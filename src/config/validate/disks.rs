//! `disks`: each image checked on the host, and the rules between disks
//! (no writable image twice, no mount point twice).

use std::path::{Component, Path};

use super::globals::fstype_ok;
use super::paths::canonical;
use super::schema::DISK;
use super::values::Radix;
use super::{Ctx, Validator};
use crate::config::error::ConfigError;
use crate::config::node::Node;
use crate::config::types::Disk;

impl Validator<'_> {
    /// One disk; every key is checked, the disk exists only if all are
    /// right.
    pub(super) fn disk(&self, node: &Node, ctx: &Ctx) -> Option<Disk> {
        let before = self.error_count();
        let f = self.ok(self.object(node, ctx, &DISK))?;
        // None: given but wrong.
        let readonly = match f.get("readonly") {
            Some((n, c)) => self.ok(self.boolean(n, &c)),
            None => Some(false),
        };
        let image = match f.get("image") {
            Some((n, c)) => self.ok(self.string(n, &c).and_then(|s| {
                let image = self.host_path(s.trim(), &c)?;
                // Whether it must open read-write is unknown if readonly
                // is wrong: that is reported already.
                if let Some(readonly) = readonly {
                    self.check_image(&image, !readonly, &c)?;
                }
                Ok(image)
            })),
            None => {
                if f.missing("image") {
                    self.report(ConfigError::MissingKey {
                        at: self.at(ctx),
                        key: "image",
                        why: "a disk needs an image file or block device".into(),
                    });
                }
                None
            }
        };
        // Outer None: absent; inner None: given but wrong.
        let fstype = f.get("fstype").map(|(n, c)| {
            self.ok(self.string(n, &c).and_then(|s| {
                let s = s.trim();
                fstype_ok(s).map_err(|why| ConfigError::BadValue {
                    at: self.at(&c),
                    value: s.into(),
                    why,
                })?;
                Ok(s.to_string())
            }))
        });
        let partition = match f.get("partition") {
            // Linux gives a disk at most 256 minors (DISK_MAX_PARTS), so 255
            // partitions; 0 is the whole disk.
            Some((n, c)) => self
                .ok(self.number(n, &c, Radix::Decimal, 255))
                .map(|p| u32::try_from(p).unwrap_or(0)),
            None => Some(0),
        };
        let mount = f.get("mount").and_then(|(n, c)| {
            let s = self.ok(self
                .string(n, &c)
                .and_then(|s| self.kernel_path(s.trim(), &c)))?;
            if Path::new(&s).components().all(|c| c == Component::RootDir) {
                self.report(ConfigError::BadValue {
                    at: self.at(&c),
                    value: s,
                    why: "is the kernel's root; mount the disk on a directory below it".into(),
                });
                return None;
            }
            if fstype.is_none() && f.missing("fstype") {
                self.report(ConfigError::MissingKey {
                    at: self.at(ctx),
                    key: "fstype",
                    why: "a disk with a mount point needs its filesystem type".into(),
                });
                return None;
            }
            Some(s)
        });
        if self.error_count() != before {
            return None;
        }
        Some(Disk {
            image: image?,
            fstype: fstype.flatten(),
            partition: partition?,
            mount,
            readonly: readonly?,
        })
    }

    /// No image attached twice unless every attachment is read-only; no
    /// mount point used twice or over a `mount` pseudo filesystem. `disks`
    /// are the valid ones with their index.
    pub(super) fn disks_apart(&self, disks: &[(usize, Disk)], mounts: &[String], ctx: &Ctx) {
        for (k, (i, d)) in disks.iter().enumerate() {
            let di = ctx.index(*i);
            for (j, e) in disks.iter().take(k) {
                if canonical(&d.image) == canonical(&e.image) && !(d.readonly && e.readonly) {
                    self.report(ConfigError::DuplicateBackend {
                        at: self.at(&di.path_key("image")),
                        first: self.at(&ctx.index(*j).path_key("image")),
                        what: format!("writable image {}", d.image.display()),
                    });
                }
                if d.mount.is_some() && d.mount == e.mount {
                    self.report(ConfigError::Conflict {
                        at: self.at(&di.path_key("mount")),
                        why: format!(
                            "{} is already the mount point of {}",
                            d.mount.as_deref().unwrap_or_default(),
                            ctx.index(*j).path
                        ),
                    });
                }
            }
            if let Some(m) = &d.mount {
                if let Some(fs) = mounts
                    .iter()
                    .find(|fs| Path::new(m) == Path::new("/").join(fs))
                {
                    self.report(ConfigError::Conflict {
                        at: self.at(&di.path_key("mount")),
                        why: format!("{m} is where \"mount\" puts {fs}"),
                    });
                }
            }
        }
    }
}
