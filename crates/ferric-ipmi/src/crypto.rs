//! RMCP+ cryptography (IPMI v2.0 §13.28-13.32) for cipher suites 1, 2, 3 and 17.
//!
//! RAKP key exchange with the user's key Kuid (the password, zero-padded, which HMAC makes
//! the same as the bare password): RAKP 2's and RAKP 3's authentication codes, then
//! `SIK = HMAC(Kg, Rm | Rc | role | ulen | uname)` (Kg defaults to Kuid), `K1 = HMAC(SIK,
//! 0x01 * 20)`, `K2 = HMAC(SIK, 0x02 * 20)`, and RAKP 4's check value `HMAC(SIK, Rm | SIDc |
//! GUIDc)`. Session packets then carry an integrity AuthCode `HMAC(K1, ...)` truncated to
//! 96 (SHA-1) or 128 (SHA-256) bits, and payloads encrypted with AES-CBC-128 keyed by the
//! first 16 bytes of K2, a random IV in front and the IPMI pad (1, 2, .., N, N) behind.
//! Random numbers (IVs) come from the caller, so this module is deterministic.

use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::wire::rakp::Algorithms;
use crate::wire::session::{encode_v20, PayloadType, V20Header, V20Packet};
use crate::DecodeError;

const AES_BLOCK: usize = 16;

/// The cipher suites this crate speaks (IPMI v2.0 table 22-20).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// RAKP-HMAC-SHA1, no integrity, no confidentiality.
    Suite1,
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, no confidentiality.
    Suite2,
    /// RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128.
    Suite3,
    /// RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128.
    Suite17,
}

/// Authentication algorithm numbers (table 13-17).
pub const AUTH_RAKP_HMAC_SHA1: u8 = 0x01;
pub const AUTH_RAKP_HMAC_SHA256: u8 = 0x03;
/// Integrity algorithm numbers (table 13-18).
pub const INTEGRITY_NONE: u8 = 0x00;
pub const INTEGRITY_HMAC_SHA1_96: u8 = 0x01;
pub const INTEGRITY_HMAC_SHA256_128: u8 = 0x04;
/// Confidentiality algorithm numbers (table 13-19).
pub const CONFIDENTIALITY_NONE: u8 = 0x00;
pub const CONFIDENTIALITY_AES_CBC_128: u8 = 0x01;

impl CipherSuite {
    /// Every suite, in the order a client probes them: strongest first.
    pub const PROBE_ORDER: [CipherSuite; 4] =
        [Self::Suite17, Self::Suite3, Self::Suite2, Self::Suite1];

    pub fn id(self) -> u8 {
        match self {
            Self::Suite1 => 1,
            Self::Suite2 => 2,
            Self::Suite3 => 3,
            Self::Suite17 => 17,
        }
    }

    pub fn from_id(id: u8) -> Option<Self> {
        Self::PROBE_ORDER.into_iter().find(|s| s.id() == id)
    }

    pub fn algorithms(self) -> Algorithms {
        let (authentication, integrity, confidentiality) = match self {
            Self::Suite1 => (AUTH_RAKP_HMAC_SHA1, INTEGRITY_NONE, CONFIDENTIALITY_NONE),
            Self::Suite2 => (
                AUTH_RAKP_HMAC_SHA1,
                INTEGRITY_HMAC_SHA1_96,
                CONFIDENTIALITY_NONE,
            ),
            Self::Suite3 => (
                AUTH_RAKP_HMAC_SHA1,
                INTEGRITY_HMAC_SHA1_96,
                CONFIDENTIALITY_AES_CBC_128,
            ),
            Self::Suite17 => (
                AUTH_RAKP_HMAC_SHA256,
                INTEGRITY_HMAC_SHA256_128,
                CONFIDENTIALITY_AES_CBC_128,
            ),
        };
        Algorithms {
            authentication,
            integrity,
            confidentiality,
        }
    }

    pub fn from_algorithms(algorithms: Algorithms) -> Option<Self> {
        Self::PROBE_ORDER
            .into_iter()
            .find(|s| s.algorithms() == algorithms)
    }

    /// The hash behind the RAKP exchange (and the integrity algorithm, when there is one).
    pub fn hash(self) -> Hash {
        match self {
            Self::Suite17 => Hash::Sha256,
            _ => Hash::Sha1,
        }
    }

    /// Length of the session trailer's AuthCode; 0 when the suite has no integrity.
    pub fn auth_code_len(self) -> usize {
        match self {
            Self::Suite1 => 0,
            Self::Suite2 | Self::Suite3 => 12,
            Self::Suite17 => 16,
        }
    }

    /// Length of RAKP 4's integrity check value (HMAC-SHA1-96 or HMAC-SHA256-128).
    pub fn rakp4_icv_len(self) -> usize {
        match self.hash() {
            Hash::Sha1 => 12,
            Hash::Sha256 => 16,
        }
    }

    pub fn has_integrity(self) -> bool {
        self.auth_code_len() > 0
    }

    pub fn has_confidentiality(self) -> bool {
        matches!(self, Self::Suite3 | Self::Suite17)
    }
}

impl std::fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cipher suite {}", self.id())
    }
}

/// The HMAC hash of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    /// HMAC over the concatenation of `parts`.
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
            // HMAC takes keys of any length; new_from_slice cannot fail for it.
            let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
                return Zeroizing::new(Vec::new());
            };
            for part in parts {
                mac.update(part);
            }
            Zeroizing::new(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Self::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts),
            Self::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts),
        }
    }

    /// The full HMAC output length.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
        }
    }
}

/// Constant-time comparison of an expected and a received code.
pub fn codes_match(expected: &[u8], given: &[u8]) -> bool {
    expected.len() == given.len() && bool::from(expected.ct_eq(given))
}

/// The values both ends feed the RAKP HMACs.
#[derive(Clone, Copy)]
pub struct RakpInputs<'a> {
    pub console_session_id: u32,
    pub managed_session_id: u32,
    pub console_random: &'a [u8; 16],
    pub managed_random: &'a [u8; 16],
    pub managed_guid: &'a [u8; 16],
    /// RAKP 1's role byte as sent (privilege and lookup bit).
    pub role: u8,
    pub username: &'a [u8],
}

impl RakpInputs<'_> {
    fn role_and_name(&self) -> [u8; 2] {
        [
            self.role,
            u8::try_from(self.username.len()).unwrap_or(u8::MAX),
        ]
    }
}

/// RAKP 2's key exchange authentication code:
/// `HMAC(Kuid, SIDm | SIDc | Rm | Rc | GUIDc | role | ulen | uname)`.
pub fn rakp2_auth_code(hash: Hash, kuid: &[u8], x: &RakpInputs<'_>) -> Zeroizing<Vec<u8>> {
    hash.hmac(
        kuid,
        &[
            &x.console_session_id.to_le_bytes(),
            &x.managed_session_id.to_le_bytes(),
            x.console_random,
            x.managed_random,
            x.managed_guid,
            &x.role_and_name(),
            x.username,
        ],
    )
}

/// RAKP 3's key exchange authentication code: `HMAC(Kuid, Rc | SIDm | role | ulen | uname)`.
pub fn rakp3_auth_code(hash: Hash, kuid: &[u8], x: &RakpInputs<'_>) -> Zeroizing<Vec<u8>> {
    hash.hmac(
        kuid,
        &[
            x.managed_random,
            &x.console_session_id.to_le_bytes(),
            &x.role_and_name(),
            x.username,
        ],
    )
}

/// A session's keys. `Debug` shows none of them.
#[derive(Clone)]
pub struct SessionKeys {
    pub sik: Zeroizing<Vec<u8>>,
    pub k1: Zeroizing<Vec<u8>>,
    pub k2: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(***)")
    }
}

impl SessionKeys {
    /// SIK from Kg (the BMC key; pass Kuid when there is none), then K1 and K2.
    pub fn derive(hash: Hash, kg: &[u8], x: &RakpInputs<'_>) -> Self {
        let sik = hash.hmac(
            kg,
            &[
                x.console_random,
                x.managed_random,
                &x.role_and_name(),
                x.username,
            ],
        );
        let k1 = hash.hmac(&sik, &[&[0x01; 20]]);
        let k2 = hash.hmac(&sik, &[&[0x02; 20]]);
        Self { sik, k1, k2 }
    }

    /// The AES-CBC-128 key: K2's first 16 bytes.
    pub fn aes_key(&self) -> Zeroizing<[u8; 16]> {
        let mut key = Zeroizing::new([0u8; 16]);
        for (dst, src) in key.iter_mut().zip(self.k2.iter()) {
            *dst = *src;
        }
        key
    }

    /// RAKP 4's integrity check value: `HMAC(SIK, Rm | SIDc | GUIDc)`, truncated.
    pub fn rakp4_icv(&self, suite: CipherSuite, x: &RakpInputs<'_>) -> Vec<u8> {
        let full = suite.hash().hmac(
            &self.sik,
            &[
                x.console_random,
                &x.managed_session_id.to_le_bytes(),
                x.managed_guid,
            ],
        );
        full.get(..suite.rakp4_icv_len())
            .unwrap_or_default()
            .to_vec()
    }
}

/// AES-CBC-128 with the IPMI pad: returns `IV | ciphertext`.
pub fn encrypt_payload(key: &[u8; 16], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    let pad = (AES_BLOCK - (plaintext.len() + 1) % AES_BLOCK) % AES_BLOCK;
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + pad + 1));
    buf.extend_from_slice(plaintext);
    buf.extend((1..=pad).map(|i| u8::try_from(i).unwrap_or_default()));
    buf.push(u8::try_from(pad).unwrap_or_default());
    let cipher = cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into());
    let ciphertext = cipher.encrypt_padded_vec_mut::<NoPadding>(&buf);
    let mut out = Vec::with_capacity(AES_BLOCK + ciphertext.len());
    out.extend_from_slice(iv);
    out.extend_from_slice(&ciphertext);
    out
}

/// Reverses [`encrypt_payload`], checking the length and the IPMI pad.
pub fn decrypt_payload(key: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if data.len() < 2 * AES_BLOCK || !data.len().is_multiple_of(AES_BLOCK) {
        return Err(DecodeError::BadPad {
            what: "confidentiality",
        });
    }
    let (iv, ciphertext) = data.split_at(AES_BLOCK);
    let mut iv_block = [0u8; AES_BLOCK];
    iv_block.copy_from_slice(iv);
    let cipher = cbc::Decryptor::<aes::Aes128>::new(key.into(), (&iv_block).into());
    let mut plain = cipher
        .decrypt_padded_vec_mut::<NoPadding>(ciphertext)
        .map_err(|_| DecodeError::BadPad {
            what: "confidentiality",
        })?;
    let pad = usize::from(plain.last().copied().unwrap_or(u8::MAX));
    let body_len = plain
        .len()
        .checked_sub(pad + 1)
        .ok_or(DecodeError::BadPad {
            what: "confidentiality",
        })?;
    let pad_ok = pad < AES_BLOCK
        && plain
            .get(body_len..body_len + pad)
            .is_some_and(|p| p.iter().enumerate().all(|(i, b)| usize::from(*b) == i + 1));
    if !pad_ok {
        return Err(DecodeError::BadPad {
            what: "confidentiality",
        });
    }
    plain.truncate(body_len);
    Ok(plain)
}

/// An established session's crypto: seals outgoing and opens incoming session packets.
#[derive(Clone, Debug)]
pub struct SessionCrypto {
    pub suite: CipherSuite,
    pub keys: SessionKeys,
}

impl SessionCrypto {
    fn auth_code(&self, signed: &[u8]) -> Vec<u8> {
        let full = self.suite.hash().hmac(&self.keys.k1, &[signed]);
        full.get(..self.suite.auth_code_len())
            .unwrap_or_default()
            .to_vec()
    }

    /// A session datagram: payload encrypted (with `iv`) and authenticated as the suite wants.
    pub fn seal(
        &self,
        payload_type: PayloadType,
        session_id: u32,
        seq: u32,
        payload: &[u8],
        iv: &[u8; 16],
    ) -> Vec<u8> {
        let encrypted = self.suite.has_confidentiality();
        let body = if encrypted {
            encrypt_payload(&self.keys.aes_key(), iv, payload)
        } else {
            payload.to_vec()
        };
        let header = V20Header {
            payload_type,
            encrypted,
            authenticated: self.suite.has_integrity(),
            session_id,
            seq,
        };
        encode_v20(header, &body, |signed| self.auth_code(signed))
    }

    /// The plaintext payload of a session packet, after checking its flags match the suite,
    /// its AuthCode and its confidentiality pad.
    pub fn open(&self, packet: &V20Packet<'_>) -> Result<Vec<u8>, DecodeError> {
        if packet.authenticated != self.suite.has_integrity() {
            return Err(DecodeError::BadIntegrity);
        }
        if packet.authenticated {
            let trailer = packet.split_trailer(self.suite.auth_code_len())?;
            if !codes_match(&self.auth_code(trailer.signed), trailer.auth_code) {
                return Err(DecodeError::BadIntegrity);
            }
        }
        if packet.encrypted != self.suite.has_confidentiality() {
            return Err(DecodeError::InvalidField {
                what: "payload encryption flag",
                value: u8::from(packet.encrypted),
            });
        }
        if packet.encrypted {
            decrypt_payload(&self.keys.aes_key(), packet.payload)
        } else {
            Ok(packet.payload.to_vec())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{decode, Datagram};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr(s: &str) -> [u8; 16] {
        hex(s).try_into().unwrap()
    }

    // A cipher suite 3 exchange captured between ipmitool 1.8.19 and pyghmi's fakebmc,
    // user `admin`, password `password`.
    const RM: &str = "87257cfe40953d67f620bcd8ec8a7f42";
    const RC: &str = "810d0f1be467c4b48194d85d645f3add";
    const GUID: &str = "fed552be909f4f169ce557ec02b2dd7d";
    const RAKP2_CODE: &str = "6476bcb0b66f85b814120ed1d580cade6c445e6b";
    const RAKP3_CODE: &str = "f8aa865018d91b6fb06fb3efc5aee44303165485";
    const RAKP4_ICV: &str = "7a42c0730cc2dbc4ba16d352";
    // ipmitool's Set Session Privilege Level (Administrator), session seq 3.
    const SET_PRIV: &str = "0600ff0706c02ec3d4e60300000020003cc5a9c38689d091c5c0ac5eaaf7bfc9a3056c1d8ef2f32905eae6dbb2385fc0ffff0207884965a4328e5f1f332a59fc";

    fn with_inputs<T>(f: impl FnOnce(&RakpInputs<'_>) -> T) -> T {
        let (rm, rc, guid) = (arr(RM), arr(RC), arr(GUID));
        f(&RakpInputs {
            console_session_id: 0xa0a2_a3a4,
            managed_session_id: 0xe6d4_c32e,
            console_random: &rm,
            managed_random: &rc,
            managed_guid: &guid,
            role: 0x14,
            username: b"admin",
        })
    }

    #[test]
    fn captured_rakp_codes_are_reproduced() {
        with_inputs(|x| {
            assert_eq!(
                *rakp2_auth_code(Hash::Sha1, b"password", x),
                hex(RAKP2_CODE)
            );
            assert_eq!(
                *rakp3_auth_code(Hash::Sha1, b"password", x),
                hex(RAKP3_CODE)
            );
            // ipmitool pads the password to 20 bytes; HMAC makes it the same key.
            let padded = *b"password\0\0\0\0\0\0\0\0\0\0\0\0";
            assert_eq!(*rakp2_auth_code(Hash::Sha1, &padded, x), hex(RAKP2_CODE));
            let keys = SessionKeys::derive(Hash::Sha1, b"password", x);
            assert_eq!(keys.rakp4_icv(CipherSuite::Suite3, x), hex(RAKP4_ICV));
            assert_ne!(
                *rakp2_auth_code(Hash::Sha1, b"Password", x),
                hex(RAKP2_CODE)
            );
        });
    }

    #[test]
    fn captured_session_packet_opens_and_reseals_identically() {
        let crypto = with_inputs(|x| SessionCrypto {
            suite: CipherSuite::Suite3,
            keys: SessionKeys::derive(Hash::Sha1, b"password", x),
        });
        let bytes = hex(SET_PRIV);
        let Ok(Datagram::V20(packet)) = decode(&bytes) else {
            panic!("not a v2.0 packet");
        };
        assert_eq!((packet.session_id, packet.seq), (0xe6d4_c32e, 3));
        let plain = crypto.open(&packet).unwrap();
        // rsAddr 20h, netFn app, rqAddr 81h, rqSeq 1, Set Session Privilege (3Bh), admin.
        assert_eq!(plain, hex("2018c881043b043c"));
        let iv: [u8; 16] = bytes[16..32].try_into().unwrap();
        let resealed = crypto.seal(PayloadType::Ipmi, 0xe6d4_c32e, 3, &plain, &iv);
        assert_eq!(resealed, bytes);

        let mut tampered = bytes.clone();
        tampered[40] ^= 1;
        let Ok(Datagram::V20(p)) = decode(&tampered) else {
            panic!()
        };
        assert_eq!(crypto.open(&p), Err(DecodeError::BadIntegrity));
    }

    #[test]
    fn suite17_keys_are_sha256_sized() {
        with_inputs(|x| {
            let keys = SessionKeys::derive(Hash::Sha256, b"password", x);
            assert_eq!(keys.sik.len(), 32);
            assert_eq!(keys.rakp4_icv(CipherSuite::Suite17, x).len(), 16);
            assert_eq!(rakp2_auth_code(Hash::Sha256, b"password", x).len(), 32);
            assert_eq!(format!("{keys:?}"), "SessionKeys(***)");
        });
    }

    #[test]
    fn aes_pad_round_trips_and_bad_pads_are_refused() {
        let key = [7u8; 16];
        let iv = [9u8; 16];
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let sealed = encrypt_payload(&key, &iv, &plain);
            assert_eq!(sealed.len() % 16, 0);
            assert_eq!(decrypt_payload(&key, &sealed).unwrap(), plain);
        }
        // A block whose last byte claims a pad of 15 with wrong pad bytes.
        let cipher = cbc::Encryptor::<aes::Aes128>::new((&key).into(), (&iv).into());
        let bad = cipher.encrypt_padded_vec_mut::<NoPadding>(&[0xee; 16]);
        let mut data = iv.to_vec();
        data.extend_from_slice(&bad);
        assert_eq!(
            decrypt_payload(&key, &data),
            Err(DecodeError::BadPad {
                what: "confidentiality"
            })
        );
        assert!(decrypt_payload(&key, &data[..31]).is_err());
        assert!(decrypt_payload(&key, &data[..16]).is_err());
    }

    #[test]
    fn suites_map_to_algorithms_and_back() {
        for s in CipherSuite::PROBE_ORDER {
            assert_eq!(CipherSuite::from_algorithms(s.algorithms()), Some(s));
            assert_eq!(CipherSuite::from_id(s.id()), Some(s));
        }
        assert_eq!(CipherSuite::from_id(0), None);
        assert_eq!(CipherSuite::Suite17.to_string(), "cipher suite 17");
    }
}
