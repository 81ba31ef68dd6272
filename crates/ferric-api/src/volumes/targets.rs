//! `/v1/volume/targets`: the volumes a node boots from or uses. Their
//! `properties` may carry secrets (CHAP) and are shown masked.

use ferric_core::volume::VolumeTargetUuid;
use ferric_core::{NodeUuid, VolumeTarget};
use ferric_db::query::VOLUME_TARGET_SORT_COLUMNS;
use serde_json::{json, Map, Value};

use super::handlers::{Fut, Resource};
use super::{as_int, as_obj, as_str, ListSpec, Ty};
use crate::nodes::view::{opt_timestamp, timestamp};
use crate::AppState;

pub struct Targets;

impl Resource for Targets {
    type Record = VolumeTarget;
    const NAME: &'static str = "targets";
    const WHAT: &'static str = "target";
    const TITLE: &'static str = "Volume target";
    const FIELDS: &'static [&'static str] = &[
        "uuid",
        "created_at",
        "updated_at",
        "boot_index",
        "extra",
        "properties",
        "volume_id",
        "volume_type",
        "links",
        "node_uuid",
    ];
    const SPEC: ListSpec = ListSpec {
        fields: &[
            "boot_index",
            "created_at",
            "extra",
            "links",
            "node_uuid",
            "properties",
            "updated_at",
            "uuid",
            "volume_id",
            "volume_type",
        ],
        default_fields: &[
            "uuid",
            "node_uuid",
            "volume_type",
            "boot_index",
            "volume_id",
        ],
        sortable: VOLUME_TARGET_SORT_COLUMNS,
        unsortable: &["extra", "properties"],
    };
    const SCHEMA: &'static [(&'static str, Ty)] = &[
        ("boot_index", Ty::Int),
        ("extra", Ty::ObjOrNull),
        ("node_uuid", Ty::Str),
        ("properties", Ty::ObjOrNull),
        ("volume_id", Ty::Str),
        ("volume_type", Ty::Str),
        ("uuid", Ty::StrOrNull),
    ];
    const REQUIRED: &'static [&'static str] =
        &["boot_index", "node_uuid", "volume_id", "volume_type"];
    const PATCH_FIELDS: &'static [&'static str] = &[
        "boot_index",
        "extra",
        "node_uuid",
        "properties",
        "volume_id",
        "volume_type",
    ];

    fn uuid(r: &VolumeTarget) -> uuid::Uuid {
        r.uuid.0
    }

    fn id(r: &VolumeTarget) -> i64 {
        r.id
    }

    fn node(r: &VolumeTarget) -> NodeUuid {
        r.node_uuid
    }

    fn value(t: &VolumeTarget, name: &str) -> Option<Value> {
        Some(match name {
            "uuid" => json!(t.uuid),
            "created_at" => json!(timestamp(&t.created_at)),
            "updated_at" => json!(opt_timestamp(&t.updated_at)),
            "boot_index" => json!(t.boot_index),
            "extra" => Value::Object(t.extra.clone()),
            "properties" => Value::Object(crate::mask::mask_dict(&t.properties)),
            "volume_id" => json!(t.volume_id),
            "volume_type" => json!(t.volume_type),
            "node_uuid" => json!(t.node_uuid),
            _ => return None,
        })
    }

    fn document(t: &VolumeTarget) -> Value {
        json!({
            "uuid": t.uuid,
            "volume_type": t.volume_type,
            "properties": *t.properties,
            "boot_index": t.boot_index,
            "volume_id": t.volume_id,
            "extra": t.extra,
            "node_uuid": null,
        })
    }

    fn build(
        obj: &Map<String, Value>,
        uuid: uuid::Uuid,
        node: NodeUuid,
        base: Option<&VolumeTarget>,
    ) -> VolumeTarget {
        let now = chrono::Utc::now();
        VolumeTarget {
            id: base.map_or(0, |b| b.id),
            uuid: VolumeTargetUuid(uuid),
            node_uuid: node,
            volume_type: as_str(obj, "volume_type"),
            volume_id: as_str(obj, "volume_id"),
            boot_index: obj.get("boot_index").map_or(0, as_int),
            properties: as_obj(obj, "properties").into(),
            extra: as_obj(obj, "extra"),
            created_at: base.map_or(now, |b| b.created_at),
            updated_at: base.and_then(|b| b.updated_at),
        }
    }

    fn get(app: &AppState, uuid: uuid::Uuid) -> Fut<'_, ferric_db::DbResult<VolumeTarget>> {
        Box::pin(app.store().get_volume_target(VolumeTargetUuid(uuid)))
    }

    fn list<'a>(
        app: &'a AppState,
        node: Option<NodeUuid>,
        page: &'a ferric_db::Page,
    ) -> Fut<'a, ferric_db::DbResult<Vec<VolumeTarget>>> {
        Box::pin(app.store().list_volume_targets(node, page))
    }

    fn create<'a>(
        app: &'a AppState,
        r: &'a VolumeTarget,
    ) -> Fut<'a, ferric_db::DbResult<VolumeTarget>> {
        Box::pin(app.store().create_volume_target(r))
    }

    fn update(app: &AppState, r: VolumeTarget) -> Fut<'_, ferric_conductor::Result<VolumeTarget>> {
        Box::pin(app.conductor.update_volume_target(r))
    }

    fn destroy(app: &AppState, uuid: uuid::Uuid) -> Fut<'_, ferric_conductor::Result<()>> {
        Box::pin(app.conductor.destroy_volume_target(VolumeTargetUuid(uuid)))
    }
}
