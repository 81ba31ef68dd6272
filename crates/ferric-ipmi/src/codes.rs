//! Numbers from the IPMI v2.0 specification: network functions, command numbers, completion
//! codes (table 5-2) and RMCP+ status codes (table 13-15), with the spec's texts.

/// Network function: chassis (requests; the response is `+ 1`).
pub const NETFN_CHASSIS: u8 = 0x00;
/// Network function: application.
pub const NETFN_APP: u8 = 0x06;

/// App: Get Device ID.
pub const CMD_GET_DEVICE_ID: u8 = 0x01;
/// App: Get Channel Authentication Capabilities.
pub const CMD_GET_CHANNEL_AUTH_CAPABILITIES: u8 = 0x38;
/// App: Get Session Challenge (IPMI v1.5 login; refused here).
pub const CMD_GET_SESSION_CHALLENGE: u8 = 0x39;
/// App: Set Session Privilege Level.
pub const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3b;
/// App: Close Session.
pub const CMD_CLOSE_SESSION: u8 = 0x3c;
/// App: Send Message (bridging).
pub const CMD_SEND_MESSAGE: u8 = 0x34;
/// App: Get Channel Cipher Suites.
pub const CMD_GET_CHANNEL_CIPHER_SUITES: u8 = 0x54;

/// Chassis: Get Chassis Status.
pub const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
/// Chassis: Chassis Control.
pub const CMD_CHASSIS_CONTROL: u8 = 0x02;
/// Chassis: Set System Boot Options.
pub const CMD_SET_SYSTEM_BOOT_OPTIONS: u8 = 0x08;
/// Chassis: Get System Boot Options.
pub const CMD_GET_SYSTEM_BOOT_OPTIONS: u8 = 0x09;

pub const CC_OK: u8 = 0x00;
pub const CC_NODE_BUSY: u8 = 0xc0;
pub const CC_INVALID_COMMAND: u8 = 0xc1;
pub const CC_REQUEST_DATA_LENGTH_INVALID: u8 = 0xc7;
pub const CC_PARAMETER_OUT_OF_RANGE: u8 = 0xc9;
pub const CC_INVALID_DATA_FIELD: u8 = 0xcc;
pub const CC_INSUFFICIENT_PRIVILEGE: u8 = 0xd4;
pub const CC_UNSPECIFIED: u8 = 0xff;
/// Set Session Privilege Level: the level is not available for this user.
pub const CC_PRIVILEGE_NOT_AVAILABLE: u8 = 0x80;
/// Set Session Privilege Level: the level exceeds the channel or user limit.
pub const CC_PRIVILEGE_EXCEEDS_LIMIT: u8 = 0x81;
/// Close Session: invalid session id.
pub const CC_INVALID_SESSION_ID: u8 = 0x87;
/// Get/Set System Boot Options: parameter not supported.
pub const CC_PARAMETER_NOT_SUPPORTED: u8 = 0x80;

/// The spec's text for a completion code (table 5-2).
pub fn completion_meaning(code: u8) -> &'static str {
    match code {
        0x00 => "command completed normally",
        0xc0 => "node busy",
        0xc1 => "invalid command",
        0xc2 => "command invalid for given LUN",
        0xc3 => "timeout while processing command",
        0xc4 => "out of space",
        0xc5 => "reservation canceled or invalid reservation ID",
        0xc6 => "request data truncated",
        0xc7 => "request data length invalid",
        0xc8 => "request data field length limit exceeded",
        0xc9 => "parameter out of range",
        0xca => "cannot return number of requested data bytes",
        0xcb => "requested sensor, data, or record not present",
        0xcc => "invalid data field in request",
        0xcd => "command illegal for specified sensor or record type",
        0xce => "command response could not be provided",
        0xcf => "cannot execute duplicated request",
        0xd0 => "SDR repository in update mode",
        0xd1 => "device in firmware update mode",
        0xd2 => "BMC initialization in progress",
        0xd3 => "destination unavailable",
        0xd4 => "insufficient privilege level",
        0xd5 => "command not supported in present state",
        0xd6 => "command sub-function has been disabled or is unavailable",
        0xff => "unspecified error",
        0x01..=0x7e => "OEM-specific completion code",
        0x80..=0xbe => "command-specific completion code",
        _ => "reserved completion code",
    }
}

pub const RMCP_OK: u8 = 0x00;
pub const RMCP_INSUFFICIENT_RESOURCES: u8 = 0x01;
pub const RMCP_INVALID_SESSION_ID: u8 = 0x02;
pub const RMCP_INVALID_AUTH_ALGORITHM: u8 = 0x04;
pub const RMCP_INVALID_INTEGRITY_ALGORITHM: u8 = 0x05;
pub const RMCP_INVALID_ROLE: u8 = 0x09;
pub const RMCP_UNAUTHORIZED_ROLE: u8 = 0x0a;
pub const RMCP_INVALID_NAME_LENGTH: u8 = 0x0c;
pub const RMCP_UNAUTHORIZED_NAME: u8 = 0x0d;
pub const RMCP_INVALID_INTEGRITY_CHECK: u8 = 0x0f;
pub const RMCP_INVALID_CONFIDENTIALITY_ALGORITHM: u8 = 0x10;
pub const RMCP_NO_CIPHER_SUITE_MATCH: u8 = 0x11;
pub const RMCP_ILLEGAL_PARAMETER: u8 = 0x12;

/// The spec's text for an RMCP+ status code (table 13-15).
pub fn rmcp_status_meaning(status: u8) -> &'static str {
    match status {
        0x00 => "no errors",
        0x01 => "insufficient resources to create a session",
        0x02 => "invalid session ID",
        0x03 => "invalid payload type",
        0x04 => "invalid authentication algorithm",
        0x05 => "invalid integrity algorithm",
        0x06 => "no matching authentication payload",
        0x07 => "no matching integrity payload",
        0x08 => "inactive session ID",
        0x09 => "invalid role",
        0x0a => "unauthorized role or privilege level requested",
        0x0b => "insufficient resources to create a session at the requested role",
        0x0c => "invalid name length",
        0x0d => "unauthorized name",
        0x0e => "unauthorized GUID",
        0x0f => "invalid integrity check value",
        0x10 => "invalid confidentiality algorithm",
        0x11 => "no cipher suite match with proposed security algorithms",
        0x12 => "illegal or unrecognized parameter",
        _ => "reserved status code",
    }
}

/// Whether an Open Session status means "those algorithms, no": try another cipher suite.
pub fn is_algorithm_refusal(status: u8) -> bool {
    matches!(status, 0x03..=0x07 | 0x10 | 0x11)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meanings_cover_ranges() {
        assert_eq!(completion_meaning(0xd4), "insufficient privilege level");
        assert_eq!(completion_meaning(0x85), "command-specific completion code");
        assert_eq!(completion_meaning(0x7f), "reserved completion code");
        assert_eq!(rmcp_status_meaning(0x0f), "invalid integrity check value");
        assert_eq!(rmcp_status_meaning(0x13), "reserved status code");
        assert!(is_algorithm_refusal(0x11));
        assert!(!is_algorithm_refusal(0x0d));
    }
}
