//! Profiles as files: `profiles/<image>.yaml` out, reviewed files in.

use crate::{Result, Store, StoreError};
use falco_learn_profiler::{from_yaml, to_yaml, ImageRef, Profile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File stems for a set of images: the short stem
/// ([`ImageRef::short_stem`], `nginx`, `nginx_1.27`) unless two images of the
/// set share it, then the full stem ([`ImageRef::full_stem`]) for those.
pub fn export_stems<'a>(
    images: impl IntoIterator<Item = &'a ImageRef>,
) -> BTreeMap<ImageRef, String> {
    let images: Vec<&ImageRef> = images.into_iter().collect();
    let mut by_short: BTreeMap<String, usize> = BTreeMap::new();
    for i in &images {
        *by_short.entry(i.short_stem()).or_default() += 1;
    }
    images
        .into_iter()
        .map(|i| {
            let s = i.short_stem();
            let stem = if by_short[&s] > 1 { i.full_stem() } else { s };
            (i.clone(), stem)
        })
        .collect()
}

/// Read and check one profile file.
pub fn read_profile_file(path: &Path) -> Result<Profile> {
    let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(from_yaml(&text, &path.display().to_string())?)
}

/// Write `text` to `path` atomically (temporary file + rename).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl Store {
    /// Write every stored profile (or those of `only`) to `dir/<stem>.yaml`;
    /// returns the files written, sorted by image. Byte-identical output for
    /// identical profiles.
    pub fn export(
        &self,
        dir: &Path,
        only: Option<&[ImageRef]>,
    ) -> Result<Vec<(ImageRef, PathBuf)>> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let all = self.images()?;
        let stems = export_stems(&all);
        let mut out = Vec::new();
        for img in all {
            if only.is_some_and(|o| !o.contains(&img)) {
                continue;
            }
            let Some(p) = self.profile(&img)? else {
                continue;
            };
            let path = dir.join(format!("{}.yaml", stems[&img]));
            write_atomic(&path, &to_yaml(&p))?;
            out.push((img, path));
        }
        Ok(out)
    }

    /// Load reviewed profile files; each replaces the stored profile of its
    /// image (a reviewed file is the source of truth). All files are read
    /// and checked before any is stored.
    pub fn import(&self, files: &[PathBuf]) -> Result<Vec<Profile>> {
        let profiles = files
            .iter()
            .map(|f| read_profile_file(f))
            .collect::<Result<Vec<_>>>()?;
        for p in &profiles {
            self.put_profile(p)?;
        }
        Ok(profiles)
    }
}
