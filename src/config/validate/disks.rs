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
use crate::config::types::{Config, Disk};

impl Validator<'_> {
    pub(super) fn disk(&self, node: &Node, ctx: &Ctx) -> Result<Disk, ConfigError> {
        let f = self.object(node, ctx, &DISK)?;
        let readonly = match f.get("readonly") {
            Some((n, c)) => self.boolean(n, &c)?,
            None => false,
        };
        let (image_node, image_ctx) = f.get("image").ok_or_else(|| ConfigError::MissingKey {
            at: self.at(ctx),
            key: "image",
            why: "a disk needs an image file or block device".into(),
        })?;
        let image = self.host_path(self.string(image_node, &image_ctx)?.trim(), &image_ctx)?;
        self.check_image(&image, !readonly, &image_ctx)?;

        let fstype = match f.get("fstype") {
            Some((n, c)) => {
                let s = self.string(n, &c)?.trim();
                fstype_ok(s).map_err(|why| ConfigError::BadValue {
                    at: self.at(&c),
                    value: s.into(),
                    why,
                })?;
                Some(s.to_string())
            }
            None => None,
        };
        let partition = match f.get("partition") {
            // Linux gives a disk at most 256 minors (DISK_MAX_PARTS), so 255
            // partitions; 0 is the whole disk.
            Some((n, c)) => u32::try_from(self.number(n, &c, Radix::Decimal, 255)?).unwrap_or(0),
            None => 0,
        };
        let mount = match f.get("mount") {
            Some((n, c)) => {
                let s = self.kernel_path(self.string(n, &c)?.trim(), &c)?;
                if Path::new(&s).components().all(|c| c == Component::RootDir) {
                    return Err(ConfigError::BadValue {
                        at: self.at(&c),
                        value: s,
                        why: "is the kernel's root; mount the disk on a directory below it".into(),
                    });
                }
                if fstype.is_none() {
                    return Err(ConfigError::MissingKey {
                        at: self.at(ctx),
                        key: "fstype",
                        why: "a disk with a mount point needs its filesystem type".into(),
                    });
                }
                Some(s)
            }
            None => None,
        };
        Ok(Disk {
            image,
            fstype,
            partition,
            mount,
            readonly,
        })
    }

    /// No image attached twice unless every attachment is read-only; no
    /// mount point used twice or over a `mount` pseudo filesystem.
    pub(super) fn disks_apart(&self, cfg: &Config, ctx: &Ctx) -> Result<(), ConfigError> {
        for (i, d) in cfg.disks.iter().enumerate() {
            let di = ctx.index(i);
            for (j, e) in cfg.disks.iter().enumerate().take(i) {
                if canonical(&d.image) == canonical(&e.image) && !(d.readonly && e.readonly) {
                    return Err(ConfigError::DuplicateBackend {
                        at: self.at(&di.path_key("image")),
                        first: self.at(&ctx.index(j).path_key("image")),
                        what: format!("writable image {}", d.image.display()),
                    });
                }
                if d.mount.is_some() && d.mount == e.mount {
                    return Err(ConfigError::Conflict {
                        at: self.at(&di.path_key("mount")),
                        why: format!(
                            "{} is already the mount point of {}",
                            d.mount.as_deref().unwrap_or_default(),
                            ctx.index(j).path
                        ),
                    });
                }
            }
            if let Some(m) = &d.mount {
                if let Some(fs) = cfg
                    .mounts
                    .iter()
                    .find(|fs| Path::new(m) == Path::new("/").join(fs))
                {
                    return Err(ConfigError::Conflict {
                        at: self.at(&di.path_key("mount")),
                        why: format!("{m} is where \"mount\" puts {fs}"),
                    });
                }
            }
        }
        Ok(())
    }
}
