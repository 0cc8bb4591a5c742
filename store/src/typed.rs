//! A sled tree holding values of one type: one schema-version byte, then
//! JSON. Every error names the tree and the key.

use crate::{Result, StoreError, STORE_SCHEMA};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// Printable form of a key for error messages: NUL separators as `|`,
/// other bytes lossily.
pub fn key_text(key: &[u8]) -> String {
    String::from_utf8_lossy(key).replace('\0', "|")
}

/// Encode a value with the schema byte in front.
pub fn encode<V: Serialize>(v: &V) -> Result<Vec<u8>> {
    let mut out = vec![STORE_SCHEMA];
    // Serialising our own plain structs to JSON cannot fail (no maps with
    // non-string keys, no custom serialisers); keep the error anyway.
    serde_json::to_writer(&mut out, v).map_err(|e| StoreError::Decode {
        tree: "(encode)",
        key: String::new(),
        message: e.to_string(),
    })?;
    Ok(out)
}

/// A tree of `V` values.
pub struct Typed<V> {
    name: &'static str,
    tree: sled::Tree,
    /// The store directory, for a full disk's message.
    dir: Arc<str>,
    _v: PhantomData<fn() -> V>,
}

impl<V: Serialize + DeserializeOwned> Typed<V> {
    pub fn new((name, tree): (&'static str, sled::Tree), dir: Arc<str>) -> Typed<V> {
        Typed {
            name,
            tree,
            dir,
            _v: PhantomData,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    fn sled_err(&self, key: &[u8]) -> impl FnOnce(sled::Error) -> StoreError + '_ {
        let key = key_text(key);
        move |source| crate::sled_error(&self.dir, self.name, key, source)
    }

    /// Decode a stored value; a foreign schema byte or bad JSON is an error.
    pub fn decode(&self, key: &[u8], bytes: &[u8]) -> Result<V> {
        match bytes.split_first() {
            Some((&STORE_SCHEMA, body)) => {
                serde_json::from_slice(body).map_err(|e| StoreError::Decode {
                    tree: self.name,
                    key: key_text(key),
                    message: e.to_string(),
                })
            }
            Some((&found, _)) => Err(StoreError::Schema {
                tree: self.name,
                key: key_text(key),
                found,
            }),
            None => Err(StoreError::Decode {
                tree: self.name,
                key: key_text(key),
                message: "empty value".into(),
            }),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<V>> {
        match self.tree.get(key).map_err(self.sled_err(key))? {
            Some(b) => self.decode(key, &b).map(Some),
            None => Ok(None),
        }
    }

    pub fn insert(&self, key: &[u8], v: &V) -> Result<()> {
        self.tree
            .insert(key, encode(v)?)
            .map_err(self.sled_err(key))?;
        Ok(())
    }

    pub fn remove(&self, key: &[u8]) -> Result<()> {
        self.tree.remove(key).map_err(self.sled_err(key))?;
        Ok(())
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn iter_prefix<'a>(
        &'a self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, V)>> + 'a {
        let p = prefix.to_vec();
        self.tree.scan_prefix(prefix).map(move |r| match r {
            Ok((k, v)) => self.decode(&k, &v).map(|v| (k.to_vec(), v)),
            Err(source) => Err(crate::sled_error(
                &self.dir,
                self.name,
                format!("{}*", key_text(&p)),
                source,
            )),
        })
    }
}
