//! A bounded cache of clients, one per BMC and set of credentials, like Ironic's
//! `SessionCache`: the driver holds one and asks it for the client of a node's endpoint.

use super::{AuthType, Client, Endpoint, Error, VerifyCa};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Ironic's default `[redfish] connection_cache_size`.
const DEFAULT_CAPACITY: usize = 1000;

/// What makes two endpoints the same client. The password is kept only as a salted hash, so
/// a changed password gets a new client (and session).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    address: String,
    username: Option<String>,
    password_hash: [u8; 32],
    auth: AuthType,
    verify_ca: VerifyCa,
}

impl Key {
    fn of(endpoint: &Endpoint) -> Key {
        let mut hasher = Sha256::new();
        hasher.update(endpoint.address.as_bytes());
        hasher.update([0]);
        if let Some(password) = &endpoint.password {
            hasher.update(password.expose().as_bytes());
        }
        Key {
            address: endpoint.address.clone(),
            username: endpoint.username.clone(),
            password_hash: hasher.finalize().into(),
            auth: endpoint.auth,
            verify_ca: endpoint.verify_ca.clone(),
        }
    }
}

#[derive(Default)]
struct Entries {
    clients: HashMap<Key, (Client, u64)>,
    clock: u64,
}

/// Clients by endpoint, least recently used evicted past the capacity; an evicted client
/// logs out (in the background).
pub struct SessionCache {
    capacity: usize,
    entries: Mutex<Entries>,
}

impl Default for SessionCache {
    fn default() -> SessionCache {
        SessionCache::new(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl SessionCache {
    /// A cache of at most `capacity` clients (at least one).
    pub fn new(capacity: usize) -> SessionCache {
        SessionCache {
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The client of `endpoint`, made on first use. Fails only when the endpoint itself is
    /// unusable (a bad address or CA bundle).
    pub fn get(&self, endpoint: &Endpoint) -> Result<Client, Error> {
        let key = Key::of(endpoint);
        let mut entries = self.lock();
        entries.clock += 1;
        let now = entries.clock;
        if let Some((client, used)) = entries.clients.get_mut(&key) {
            *used = now;
            return Ok(client.clone());
        }
        let client = Client::new(endpoint.clone())?;
        entries.clients.insert(key, (client.clone(), now));
        let evicted = self.evict_past_capacity(&mut entries);
        drop(entries);
        for old in evicted {
            old.logout_in_background();
        }
        Ok(client)
    }

    /// Drops the client of `endpoint` (logging it out); whether there was one.
    pub fn forget(&self, endpoint: &Endpoint) -> bool {
        let removed = self.lock().clients.remove(&Key::of(endpoint));
        match removed {
            Some((client, _)) => {
                client.logout_in_background();
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // The map stays consistent even if a holder panicked: every change is one call.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn evict_past_capacity(&self, entries: &mut Entries) -> Vec<Client> {
        let mut evicted = Vec::new();
        while entries.clients.len() > self.capacity {
            let Some(oldest) = entries
                .clients
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some((client, _)) = entries.clients.remove(&oldest) {
                tracing::debug!(address = %oldest.address, "client evicted from the session cache");
                evicted.push(client);
            }
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str, password: &str) -> Endpoint {
        Endpoint::new(address).with_credentials("admin", password)
    }

    #[test]
    fn the_same_endpoint_gets_the_same_client() {
        let cache = SessionCache::new(10);
        let a = cache
            .get(&endpoint("http://127.0.0.1:16390", "pw"))
            .unwrap();
        let b = cache
            .get(&endpoint("http://127.0.0.1:16390", "pw"))
            .unwrap();
        assert!(a.same_as(&b));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_changed_password_or_auth_type_gets_a_new_client() {
        let cache = SessionCache::new(10);
        let a = cache
            .get(&endpoint("http://127.0.0.1:16390", "pw"))
            .unwrap();
        let b = cache
            .get(&endpoint("http://127.0.0.1:16390", "other"))
            .unwrap();
        let mut basic = endpoint("http://127.0.0.1:16390", "pw");
        basic.auth = AuthType::Basic;
        let c = cache.get(&basic).unwrap();
        assert!(!a.same_as(&b) && !a.same_as(&c) && !b.same_as(&c));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn the_least_recently_used_client_is_evicted() {
        let cache = SessionCache::new(2);
        let first = cache
            .get(&endpoint("http://127.0.0.1:16391", "pw"))
            .unwrap();
        let second = cache
            .get(&endpoint("http://127.0.0.1:16392", "pw"))
            .unwrap();
        // Touch the first: the second is now the oldest.
        cache
            .get(&endpoint("http://127.0.0.1:16391", "pw"))
            .unwrap();
        cache
            .get(&endpoint("http://127.0.0.1:16393", "pw"))
            .unwrap();
        assert_eq!(cache.len(), 2);
        let first_again = cache
            .get(&endpoint("http://127.0.0.1:16391", "pw"))
            .unwrap();
        assert!(first.same_as(&first_again));
        let second_again = cache
            .get(&endpoint("http://127.0.0.1:16392", "pw"))
            .unwrap();
        assert!(!second.same_as(&second_again), "the second was evicted");
    }

    #[test]
    fn a_bad_address_is_an_error_and_not_cached() {
        let cache = SessionCache::default();
        let err = cache.get(&endpoint("ftp://bmc", "pw")).unwrap_err();
        assert!(matches!(err, Error::InvalidAddress { .. }));
        assert!(cache.is_empty());
    }

    #[test]
    fn the_key_holds_no_password() {
        let key = Key::of(&endpoint("http://127.0.0.1:16390", "hunter2"));
        assert!(!format!("{key:?}").contains("hunter2"));
    }
}
