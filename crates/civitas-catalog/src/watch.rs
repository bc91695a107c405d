//! The catalog's change stream, for followers such as the data plane's route table.

use futures::{Stream, StreamExt};

use civitas_model::{Kind, Urn};

use crate::error::CatalogError;
use crate::keys;
use crate::kv::Revision;
use crate::repository::Catalog;

/// One change to a current document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEvent {
    /// Revision of the change; changes of one apply share it.
    pub revision: Revision,
    /// Kind of the changed document.
    pub kind: Kind,
    /// Its name.
    pub name: Urn,
    /// The new canonical JSON-LD, or `None` when it was deleted.
    pub document: Option<Vec<u8>>,
}

impl Catalog {
    /// Streams every change to current documents from `from_revision` on (history
    /// first, then live), in revision order. `None` follows only new changes.
    pub async fn watch(
        &self,
        from_revision: Option<Revision>,
    ) -> Result<impl Stream<Item = Result<CatalogEvent, CatalogError>> + Send + 'static, CatalogError> {
        let from = match from_revision {
            Some(r) => r,
            None => self.store.current_revision().await? + 1,
        };
        let stream = self.store.watch(keys::DOC_PREFIX.as_bytes(), from).await?;
        Ok(stream.filter_map(|item| async move {
            match item {
                Err(e) => Some(Err(CatalogError::from(e))),
                Ok(ev) => {
                    let (kind, name) = keys::parse_doc_key(&ev.key)?;
                    Some(Ok(CatalogEvent { revision: ev.revision, kind, name, document: ev.value }))
                }
            }
        }))
    }
}
