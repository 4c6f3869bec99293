//! refund-fanout: one `RefundRequest`, many subscribers (the event-sourced
//! return of a device).
//!
//! User Support publishes a `RefundRequest` to `refund-requests` with only
//! what identifies each piece. The topology checks it against the latest
//! registered definition of `RefundRequest` (a payload that does not
//! conform goes to the dead-letter topic with kind `validation`, the field
//! and the reason), then gives each team its own projection, keyed by the
//! refund id (so every projection of one refund lands on the same partition
//! number, in order):
//! - `sales`: an [`OrderRefundRequest`] — the order to refund;
//! - `inventory`: a [`ShipmentRequest`] — the replacement to ship, only when
//!   the request has a `shipment`;
//! - `manufacturing`: a [`DisassemblyOrder`] — the defective item and where
//!   it is;
//! - `accounting`: an [`AssetDisposal`] — the cost to book;
//! - `refund-audit`: an [`AuditEntry`] per request — the event as received
//!   and the teams it went to.
//!
//! All five are written in the transaction that consumes the request, so a
//! read_committed subscriber sees each projection of a request exactly once.
//! The definition ships with the topology (`definitions/RefundRequest.json`,
//! [`definition`]); the binary registers it when the cluster has none.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir::prelude::*;
use weir::schemas::NewDefinition;

/// Input: `RefundRequest` events (JSON; any key).
pub const REFUND_REQUESTS: &str = "refund-requests";
/// Sales' projection.
pub const SALES: &str = "sales";
/// Inventory's projection.
pub const INVENTORY: &str = "inventory";
/// Manufacturing's projection.
pub const MANUFACTURING: &str = "manufacturing";
/// Accounting's projection.
pub const ACCOUNTING: &str = "accounting";
/// The audit trail.
pub const AUDIT: &str = "refund-audit";
/// The event type the input is validated against.
pub const EVENT_TYPE: &str = "RefundRequest";

/// The registration file of `RefundRequest` (also usable with `weir schema
/// register`).
pub const DEFINITION_JSON: &str = include_str!("../definitions/RefundRequest.json");

/// The bundled definition of `RefundRequest`.
pub fn definition() -> NewDefinition {
    serde_json::from_str(DEFINITION_JSON).expect("the bundled definition parses")
}

/// An amount of money.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Money {
    /// How much.
    pub amount: f64,
    /// ISO 4217 code.
    pub currency: String,
}

/// The input event (see the definition for what is required).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequest {
    /// The refund's id.
    pub refund_id: String,
    /// The customer.
    pub customer_id: String,
    /// When the customer asked.
    #[serde(default)]
    pub requested_at: Option<String>,
    /// The order to refund.
    pub order: Order,
    /// The device's model.
    pub model: Model,
    /// Where to ship a replacement, if one is wanted.
    #[serde(default)]
    pub shipment: Option<Shipment>,
    /// The returned item.
    pub defective_item: DefectiveItem,
    /// Where the returned item is.
    pub location: Location,
    /// What the return costs the company.
    pub cost: Cost,
}

/// `order`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    /// The order id.
    pub order_id: String,
    /// What was paid.
    pub amount: f64,
    /// Its currency.
    pub currency: String,
}

/// `model`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// The stock-keeping unit.
    pub sku: String,
    /// Its name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `shipment`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    /// Where to.
    pub address: String,
    /// `standard` or `express`.
    pub method: String,
}

/// `defectiveItem`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefectiveItem {
    /// Its serial number.
    pub serial: String,
    /// What is wrong with it.
    pub defect: String,
}

/// `location`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The warehouse.
    pub warehouse: String,
    /// The bin in it.
    #[serde(default)]
    pub bin: Option<String>,
}

/// `cost`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    /// How much.
    pub amount: f64,
    /// Its currency.
    pub currency: String,
    /// The cost center to book it on.
    pub cost_center: String,
}

/// Sales: refund the customer's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRefundRequest {
    /// The refund.
    pub refund_id: String,
    /// The order.
    pub order_id: String,
    /// The customer.
    pub customer_id: String,
    /// What to pay back.
    pub refund: Money,
}

/// Inventory: ship a replacement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentRequest {
    /// The refund.
    pub refund_id: String,
    /// The model to ship.
    pub sku: String,
    /// Where to.
    pub address: String,
    /// `standard` or `express`.
    pub method: String,
}

/// Manufacturing: diagnose and disassemble the returned item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DisassemblyOrder {
    /// The refund.
    pub refund_id: String,
    /// The item's serial number.
    pub serial: String,
    /// Its model.
    pub sku: String,
    /// The reported defect.
    pub defect: String,
    /// Where it is.
    pub warehouse: String,
    /// The bin, when known.
    pub bin: Option<String>,
}

/// Accounting: book the disposal's cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetDisposal {
    /// The refund.
    pub refund_id: String,
    /// The cost.
    pub cost: Money,
    /// Where to book it.
    pub cost_center: String,
    /// The disposed item's serial number.
    pub serial: String,
}

/// The audit trail: each request as received, and where it went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// The refund.
    pub refund_id: String,
    /// Always [`EVENT_TYPE`].
    pub event_type: String,
    /// The teams that got a projection (`sales`, `inventory`, …).
    pub fanned_out_to: Vec<String>,
    /// The event as received.
    pub event: Value,
}

impl RefundRequest {
    /// Sales' part.
    pub fn to_sales(&self) -> OrderRefundRequest {
        OrderRefundRequest {
            refund_id: self.refund_id.clone(),
            order_id: self.order.order_id.clone(),
            customer_id: self.customer_id.clone(),
            refund: Money {
                amount: self.order.amount,
                currency: self.order.currency.clone(),
            },
        }
    }

    /// Inventory's part, when a replacement is wanted.
    pub fn to_inventory(&self) -> Option<ShipmentRequest> {
        let s = self.shipment.as_ref()?;
        Some(ShipmentRequest {
            refund_id: self.refund_id.clone(),
            sku: self.model.sku.clone(),
            address: s.address.clone(),
            method: s.method.clone(),
        })
    }

    /// Manufacturing's part.
    pub fn to_manufacturing(&self) -> DisassemblyOrder {
        DisassemblyOrder {
            refund_id: self.refund_id.clone(),
            serial: self.defective_item.serial.clone(),
            sku: self.model.sku.clone(),
            defect: self.defective_item.defect.clone(),
            warehouse: self.location.warehouse.clone(),
            bin: self.location.bin.clone(),
        }
    }

    /// Accounting's part.
    pub fn to_accounting(&self) -> AssetDisposal {
        AssetDisposal {
            refund_id: self.refund_id.clone(),
            cost: Money {
                amount: self.cost.amount,
                currency: self.cost.currency.clone(),
            },
            cost_center: self.cost.cost_center.clone(),
            serial: self.defective_item.serial.clone(),
        }
    }

    /// The teams that get a projection of this request.
    pub fn subscribers(&self) -> Vec<String> {
        let mut teams = vec![SALES];
        if self.shipment.is_some() {
            teams.push(INVENTORY);
        }
        teams.extend([MANUFACTURING, ACCOUNTING]);
        teams.into_iter().map(String::from).collect()
    }
}

/// The topology; see the crate docs.
pub fn topology() -> Topology {
    let b = Topology::builder();
    let requests = b
        .stream(REFUND_REQUESTS, Bytes, Json::<Value>::new())
        .validate(EVENT_TYPE)
        .try_map(|_, raw: Value| {
            // The schema holds what the struct needs; a mismatch between the
            // two is still a clear dead letter, not a panic.
            let r: RefundRequest = serde_json::from_value(raw.clone())
                .map_err(|e| OpError::validation(format!("not a RefundRequest: {e}")))?;
            Ok((r.refund_id.clone(), (r, raw)))
        });
    let typed = requests.map_values(|(r, _): (RefundRequest, Value)| r);
    typed
        .map_values(|r: RefundRequest| r.to_sales())
        .with_codecs(Str, Json::new())
        .to(SALES);
    typed
        .flat_map(|k: String, r: RefundRequest| r.to_inventory().map(|s| (k, s)))
        .with_codecs(Str, Json::new())
        .to(INVENTORY);
    typed
        .map_values(|r: RefundRequest| r.to_manufacturing())
        .with_codecs(Str, Json::new())
        .to(MANUFACTURING);
    typed
        .map_values(|r: RefundRequest| r.to_accounting())
        .with_codecs(Str, Json::new())
        .to(ACCOUNTING);
    requests
        .map_values(|(r, raw): (RefundRequest, Value)| AuditEntry {
            refund_id: r.refund_id.clone(),
            event_type: EVENT_TYPE.to_string(),
            fanned_out_to: r.subscribers(),
            event: raw,
        })
        .with_codecs(Str, Json::new())
        .to(AUDIT);
    b.build().expect("the refund-fanout topology is valid")
}

/// The app with refund-fanout's embedded defaults: what its binary and `weir run
/// refund-fanout` start from (`from_env()` or `from_args(..)`, then `run(topology())`).
pub fn app() -> weir::AppBuilder {
    weir::App::builder()
        .with_default("application_id", "refund-fanout")
        .with_event_definition(definition())
}
