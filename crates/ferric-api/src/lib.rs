//! Ferric's REST API: Ironic's API v1, so the stock OpenStack clients work
//! unchanged against it.
//!
//! Architecture invariants:
//! - Only this crate knows microversions: the conductor and storage see
//!   typed commands and records, never a version or an HTTP detail.
//! - Reads go to storage directly; every change goes through the
//!   conductor, which takes the node's lock.
//! - Every error leaves through [`error::ApiError`], in Ironic's body shape;
//!   secrets leave only masked ([`mask`]).

pub mod bios_firmware;
pub mod chassis;
pub mod children;
pub mod compat;
pub mod conductors;
pub mod console;
pub mod context;
pub mod deploy_templates;
pub mod drivers;
pub mod error;
pub mod events;
pub mod inspection_rules;
pub mod listing;
pub mod mask;
pub mod node_hardware;
pub mod nodes;
pub mod patch;
pub mod portgroups;
pub mod ports;
pub mod raid;
pub mod ramdisk;
pub mod root;
pub mod runbooks;
pub mod shards;
pub mod step_schema;
pub mod vendor;
pub mod version;
pub mod volumes;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use axum::Router;
use ferric_conductor::Conductor;
use ferric_db::Store;

use error::ApiError;
use version::VersionError;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub conductor: Conductor,
    /// The URL links start with; `None` means "as the client called us".
    pub public_endpoint: Option<String>,
}

impl AppState {
    pub fn store(&self) -> &Arc<dyn Store> {
        self.conductor.store()
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let v1 = v1_routes();
    let routes = Router::new()
        .route("/", get(root::root))
        .route("/v1", get(root::v1))
        .route("/v1/", get(root::v1))
        .nest("/v1", v1.clone())
        .merge(v1)
        .merge(ramdisk::routes());
    with_middleware(routes, state)
}

pub use ramdisk::ramdisk_router;

/// Ironic's behaviour around any set of routes: versions negotiated and
/// stamped, 404/405 in Ironic's shape, requests run to completion,
/// trailing slashes ignored, `.json` taken off for older clients.
pub(crate) fn with_middleware(routes: Router<AppState>, state: AppState) -> Router {
    let routes = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(compat::reject_undecodable_path))
        .layer(middleware::from_fn(versioning))
        .layer(middleware::from_fn(run_to_completion))
        .with_state(state);
    // The rewrite has to happen before routing, so the routes sit behind a
    // fallback of their own.
    Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .map_request(|req| {
                trim_trailing_slash(compat::strip_json_suffix(trim_trailing_slash(req)))
            })
            .service(routes),
    )
}

/// Runs each request on a task of its own, so a client that hangs up
/// mid-request cannot cancel a conductor call half-way (leaving a lock taken
/// with nobody to release it).
async fn run_to_completion(req: Request, next: Next) -> Response {
    match tokio::spawn(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "request handler failed");
            ApiError::internal().into_response()
        }
    }
}

/// Ironic (pecan) ignores trailing slashes: the stock client asks for
/// `/v1/nodes/?limit=1` when it pages.
fn trim_trailing_slash(mut req: Request) -> Request {
    let path = req.uri().path();
    if path.len() <= 1 || !path.ends_with('/') {
        return req;
    }
    let trimmed = match path.trim_end_matches('/') {
        "" => "/",
        t => t,
    }
    .to_owned();
    compat::replace_path(&mut req, &trimmed);
    req
}

fn v1_routes() -> Router<AppState> {
    use nodes::actions as na;
    Router::new()
        .route("/nodes", get(nodes::list).post(nodes::create))
        .route("/nodes/detail", get(nodes::list_detail))
        .route("/nodes/validate", get(na::validate_by_query))
        .route(
            "/nodes/{node}",
            get(nodes::show).patch(nodes::update).delete(nodes::delete),
        )
        .route("/nodes/{node}/states", get(na::states))
        .route("/nodes/{node}/states/power", put(na::power))
        .route("/nodes/{node}/states/provision", put(na::provision))
        .route("/nodes/{node}/states/raid", put(raid::set_target))
        .route(
            "/nodes/{node}/maintenance",
            put(na::set_maintenance).delete(na::unset_maintenance),
        )
        .route(
            "/nodes/{node}/management/boot_device",
            get(na::get_boot_device).put(na::set_boot_device),
        )
        .route(
            "/nodes/{node}/management/boot_device/supported",
            get(na::supported_boot_devices),
        )
        .route("/nodes/{node}/management/inject_nmi", put(na::inject_nmi))
        .route("/nodes/{node}/validate", get(na::validate))
        .route("/nodes/{node}/history", get(nodes::history::list))
        .route("/nodes/{node}/history/{event}", get(nodes::history::show))
        .route("/nodes/{node}/inventory", get(nodes::history::inventory))
        .route(
            "/nodes/{node}/traits",
            get(na::get_traits)
                .put(na::set_traits)
                .delete(na::remove_traits),
        )
        .route(
            "/nodes/{node}/traits/{name}",
            put(na::add_trait).delete(na::remove_trait),
        )
        .route("/nodes/{node}/ports", get(ports::list_of_node))
        .route(
            "/nodes/{node}/ports/detail",
            get(ports::list_of_node_detail),
        )
        .route("/nodes/{node}/portgroups", get(portgroups::list_of_node))
        .route(
            "/nodes/{node}/portgroups/detail",
            get(portgroups::list_of_node_detail),
        )
        .route("/ports", get(ports::list).post(ports::create))
        .route("/ports/detail", get(ports::list_detail))
        .route(
            "/ports/{port}",
            get(ports::show).patch(ports::update).delete(ports::delete),
        )
        .route(
            "/portgroups",
            get(portgroups::list).post(portgroups::create),
        )
        .route("/portgroups/detail", get(portgroups::list_detail))
        .route(
            "/portgroups/{pg}",
            get(portgroups::show)
                .patch(portgroups::update)
                .delete(portgroups::delete),
        )
        .route("/portgroups/{pg}/ports", get(portgroups::ports))
        .route(
            "/portgroups/{pg}/ports/detail",
            get(portgroups::ports_detail),
        )
        .route("/chassis", get(chassis::list).post(chassis::create))
        .route("/chassis/detail", get(chassis::list_detail))
        .route(
            "/chassis/{c}",
            get(chassis::show)
                .patch(chassis::update)
                .delete(chassis::delete),
        )
        .route("/chassis/{c}/nodes", get(chassis::nodes))
        .route("/chassis/{c}/nodes/detail", get(chassis::nodes_detail))
        .route("/drivers", get(drivers::list))
        .route("/drivers/{name}", get(drivers::show))
        .route("/drivers/{name}/properties", get(drivers::properties))
        .route("/conductors", get(conductors::list))
        .route("/conductors/{host}", get(conductors::show))
        // Node actions: console, vendor passthru, driver RAID, children,
        // shards, events.
        .route(
            "/nodes/{node}/states/console",
            get(console::show).put(console::set),
        )
        .route(
            "/nodes/{node}/vendor_passthru/methods",
            get(vendor::node_methods).fallback(vendor::node_call_methods),
        )
        .route("/nodes/{node}/vendor_passthru", any(vendor::node_call))
        .route(
            "/nodes/{node}/vendor_passthru/{method}",
            any(vendor::node_call_named),
        )
        .route(
            "/drivers/{name}/vendor_passthru/methods",
            get(vendor::driver_methods).fallback(vendor::driver_call_methods),
        )
        .route("/drivers/{name}/vendor_passthru", any(vendor::driver_call))
        .route(
            "/drivers/{name}/vendor_passthru/{method}",
            any(vendor::driver_call_named),
        )
        .route(
            "/drivers/{name}/raid/logical_disk_properties",
            get(raid::logical_disk_properties),
        )
        .route("/nodes/{node}/children", get(children::list))
        .route("/nodes/{node}/children/{*rest}", any(children::below))
        .route("/shards", get(shards::list))
        .route("/shards/{name}", get(shards::show))
        .route("/events", post(events::post))
        // BIOS, firmware, boot mode, secure boot, virtual media, indicators.
        .route("/nodes/{node}/bios", get(bios_firmware::list_bios))
        .route(
            "/nodes/{node}/bios/{setting}",
            get(bios_firmware::show_bios),
        )
        .route("/nodes/{node}/firmware", get(bios_firmware::list_firmware))
        .route(
            "/nodes/{node}/states/boot_mode",
            put(node_hardware::set_boot_mode),
        )
        .route(
            "/nodes/{node}/states/secure_boot",
            put(node_hardware::set_secure_boot),
        )
        .route(
            "/nodes/{node}/vmedia",
            get(node_hardware::get_vmedia)
                .post(node_hardware::attach_vmedia)
                .delete(node_hardware::detach_vmedia),
        )
        .route(
            "/nodes/{node}/management/indicators",
            get(node_hardware::list_indicators),
        )
        .route(
            "/nodes/{node}/management/indicators/{indicator}",
            get(node_hardware::get_indicator).put(node_hardware::set_indicator),
        )
        // Deploy templates (1.55).
        .route(
            "/deploy_templates",
            get(deploy_templates::list).post(deploy_templates::create),
        )
        .route(
            "/deploy_templates/detail",
            get(deploy_templates::list_detail),
        )
        .route(
            "/deploy_templates/{t}",
            get(deploy_templates::show)
                .patch(deploy_templates::update)
                .delete(deploy_templates::delete),
        )
        // Runbooks (1.92; traits 1.112).
        .route("/runbooks", get(runbooks::list).post(runbooks::create))
        .route("/runbooks/detail", get(runbooks::list_detail))
        .route(
            "/runbooks/{r}",
            get(runbooks::show)
                .patch(runbooks::update)
                .delete(runbooks::delete),
        )
        .route(
            "/runbooks/{r}/traits",
            get(runbooks::get_traits)
                .put(runbooks::set_traits)
                .delete(runbooks::remove_traits),
        )
        .route(
            "/runbooks/{r}/traits/{name}",
            put(runbooks::add_trait).delete(runbooks::remove_trait),
        )
        // Volume connectors and targets (1.32).
        .merge(volume_routes())
        // Inspection rules (1.96).
        .route(
            "/inspection_rules",
            get(inspection_rules::list).post(inspection_rules::create),
        )
        .route(
            "/inspection_rules/{uuid}",
            get(inspection_rules::show)
                .patch(inspection_rules::update)
                .delete(inspection_rules::delete),
        )
}

fn volume_routes() -> Router<AppState> {
    use volumes::connectors::Connectors as C;
    use volumes::handlers as h;
    use volumes::targets::Targets as T;
    let mut r = Router::new()
        .route("/volume", get(volumes::root))
        .route("/nodes/{node}/volume", get(volumes::node_root));
    // The same handlers serve both places; under a node they only list.
    for base in ["/volume", "/nodes/{node}/volume"] {
        r = r
            .route(
                &format!("{base}/connectors"),
                get(h::list::<C>).post(h::create::<C>),
            )
            .route(
                &format!("{base}/connectors/{{uuid}}"),
                get(h::show::<C>)
                    .patch(h::update::<C>)
                    .delete(h::delete::<C>),
            )
            .route(
                &format!("{base}/targets"),
                get(h::list::<T>).post(h::create::<T>),
            )
            .route(
                &format!("{base}/targets/{{uuid}}"),
                get(h::show::<T>)
                    .patch(h::update::<T>)
                    .delete(h::delete::<T>),
            );
    }
    r
}

async fn not_found() -> Response {
    ApiError::routing(StatusCode::NOT_FOUND, "").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::routing(StatusCode::METHOD_NOT_ALLOWED, "").into_response()
}

/// Negotiates the microversion, stamps Ironic's headers on every
/// response, and logs the request (never its body).
async fn versioning(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let request_id = format!("req-{}", uuid::Uuid::new_v4());
    let negotiated = version::negotiate(req.headers());
    let mut resp = match &negotiated {
        Ok(v) => {
            req.extensions_mut().insert(*v);
            next.run(req).await
        }
        Err(VersionError::Unparsable(header)) => ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            format!("Invalid value for {header} header"),
        )
        .into_response(),
        Err(VersionError::Unsupported(msg)) => {
            let mut e = ApiError::routing(StatusCode::NOT_ACCEPTABLE, msg.clone());
            e.routing = path != "/";
            e.into_response()
        }
    };
    let headers = resp.headers_mut();
    if !matches!(negotiated, Err(VersionError::Unparsable(_))) {
        headers.insert(
            "x-openstack-ironic-api-minimum-version",
            HeaderValue::from_static("1.1"),
        );
        if let Ok(max) = HeaderValue::from_str(&version::MAX.to_string()) {
            headers.insert("x-openstack-ironic-api-maximum-version", max);
        }
    }
    if let Ok(v) = &negotiated {
        if let Ok(value) = HeaderValue::from_str(&v.to_string()) {
            headers.insert("x-openstack-ironic-api-version", value.clone());
            headers.insert(
                "openstack-api-version",
                HeaderValue::from_str(&format!("baremetal {v}")).unwrap_or(value),
            );
        }
    }
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-openstack-request-id", id.clone());
        headers.insert("openstack-request-id", id);
    }
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, %request_id, "request");
    resp
}
