//! `/v1/volume/connectors`: how a node reaches its storage (an initiator
//! IQN, a WWPN, ...).

use ferric_core::volume::VolumeConnectorUuid;
use ferric_core::{NodeUuid, VolumeConnector};
use ferric_db::query::VOLUME_CONNECTOR_SORT_COLUMNS;
use serde_json::{json, Map, Value};

use super::handlers::{Fut, Resource};
use super::{as_obj, as_str, ListSpec, Ty};
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::AppState;

pub struct Connectors;

impl Resource for Connectors {
    type Record = VolumeConnector;
    const NAME: &'static str = "connectors";
    const WHAT: &'static str = "connector";
    const TITLE: &'static str = "Volume connector";
    const FIELDS: &'static [&'static str] = &[
        "uuid",
        "created_at",
        "updated_at",
        "connector_id",
        "extra",
        "type",
        "links",
        "node_uuid",
    ];
    const SPEC: ListSpec = ListSpec {
        fields: &[
            "connector_id",
            "created_at",
            "extra",
            "links",
            "node_uuid",
            "type",
            "updated_at",
            "uuid",
        ],
        default_fields: &["uuid", "node_uuid", "type", "connector_id"],
        sortable: VOLUME_CONNECTOR_SORT_COLUMNS,
        unsortable: &["extra"],
    };
    const SCHEMA: &'static [(&'static str, Ty)] = &[
        ("connector_id", Ty::Str),
        ("extra", Ty::ObjOrNull),
        ("node_uuid", Ty::Str),
        ("type", Ty::Str),
        ("uuid", Ty::StrOrNull),
    ];
    const REQUIRED: &'static [&'static str] = &["connector_id", "node_uuid", "type"];
    const PATCH_FIELDS: &'static [&'static str] = &["connector_id", "extra", "node_uuid", "type"];

    fn uuid(r: &VolumeConnector) -> uuid::Uuid {
        r.uuid.0
    }

    fn id(r: &VolumeConnector) -> i64 {
        r.id
    }

    fn node(r: &VolumeConnector) -> NodeUuid {
        r.node_uuid
    }

    fn value(c: &VolumeConnector, name: &str) -> Option<Value> {
        Some(match name {
            "uuid" => json!(c.uuid),
            "created_at" => json!(timestamp(&c.created_at)),
            "updated_at" => json!(opt_timestamp(&c.updated_at)),
            "connector_id" => json!(c.connector_id),
            "extra" => Value::Object(c.extra.clone()),
            "type" => json!(c.kind),
            "node_uuid" => json!(c.node_uuid),
            _ => return None,
        })
    }

    fn document(c: &VolumeConnector) -> Value {
        json!({
            "uuid": c.uuid,
            "type": c.kind,
            "connector_id": c.connector_id,
            "extra": c.extra,
            "node_uuid": null,
        })
    }

    fn build(
        obj: &Map<String, Value>,
        uuid: uuid::Uuid,
        node: NodeUuid,
        base: Option<&VolumeConnector>,
    ) -> VolumeConnector {
        let now = chrono::Utc::now();
        VolumeConnector {
            id: base.map_or(0, |b| b.id),
            uuid: VolumeConnectorUuid(uuid),
            node_uuid: node,
            kind: as_str(obj, "type"),
            connector_id: as_str(obj, "connector_id"),
            extra: as_obj(obj, "extra"),
            created_at: base.map_or(now, |b| b.created_at),
            updated_at: base.and_then(|b| b.updated_at),
        }
    }

    fn get(app: &AppState, uuid: uuid::Uuid) -> Fut<'_, ferric_db::DbResult<VolumeConnector>> {
        Box::pin(app.store().get_volume_connector(VolumeConnectorUuid(uuid)))
    }

    fn list<'a>(
        app: &'a AppState,
        node: Option<NodeUuid>,
        page: &'a ferric_db::Page,
    ) -> Fut<'a, ferric_db::DbResult<Vec<VolumeConnector>>> {
        Box::pin(app.store().list_volume_connectors(node, page))
    }

    fn create<'a>(
        app: &'a AppState,
        r: &'a VolumeConnector,
    ) -> Fut<'a, ferric_db::DbResult<VolumeConnector>> {
        Box::pin(app.store().create_volume_connector(r))
    }

    fn update(
        app: &AppState,
        r: VolumeConnector,
    ) -> Fut<'_, ferric_conductor::Result<VolumeConnector>> {
        Box::pin(app.conductor.update_volume_connector(r))
    }

    fn destroy(app: &AppState, uuid: uuid::Uuid) -> Fut<'_, ferric_conductor::Result<()>> {
        Box::pin(
            app.conductor
                .destroy_volume_connector(VolumeConnectorUuid(uuid)),
        )
    }
}
