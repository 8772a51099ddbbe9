//! The console's pages and who may open them: one table for the navigation (drawn per role) and
//! for the server's page guard (which redirects or answers 403).

use domain::access::{Permission, Role};

/// A page of the console.
#[derive(Debug)]
pub struct Page {
    /// Its path; pages under it (`/templates/new`) share its rule.
    pub path: &'static str,
    pub label: &'static str,
    /// `None`: open to everyone (sign-in). `Some(&[])`: any signed-in user. Otherwise every
    /// listed permission is needed.
    pub requires: Option<&'static [Permission]>,
    /// Whether it appears in the navigation.
    pub in_nav: bool,
}

pub const PAGES: &[Page] = &[
    Page {
        path: "/login",
        label: "Sign in",
        requires: None,
        in_nav: false,
    },
    Page {
        path: "/",
        label: "Overview",
        requires: Some(&[]),
        in_nav: true,
    },
    Page {
        path: "/send",
        label: "Send",
        requires: Some(&[Permission::SendMessages]),
        in_nav: true,
    },
    Page {
        path: "/messages",
        label: "Delivery log",
        requires: Some(&[Permission::ViewDeliveryLog]),
        in_nav: true,
    },
    Page {
        path: "/inbox",
        label: "Inbox",
        requires: Some(&[Permission::SendMessages]),
        in_nav: true,
    },
    Page {
        path: "/templates",
        label: "Templates",
        requires: Some(&[Permission::ViewTemplates]),
        in_nav: true,
    },
    Page {
        path: "/users",
        label: "Users",
        requires: Some(&[Permission::ManageUsers]),
        in_nav: true,
    },
    Page {
        path: "/consent",
        label: "Consent",
        requires: Some(&[Permission::ViewConsent]),
        in_nav: true,
    },
    Page {
        path: "/spend",
        label: "Spend",
        requires: Some(&[Permission::ViewSpend]),
        in_nav: true,
    },
    Page {
        path: "/audit",
        label: "Audit log",
        requires: Some(&[Permission::ViewAuditLog]),
        in_nav: true,
    },
    Page {
        path: "/settings",
        label: "Settings",
        requires: Some(&[Permission::ManageSettings]),
        in_nav: true,
    },
    Page {
        path: "/api-keys",
        label: "API keys",
        requires: Some(&[Permission::ManageSettings]),
        in_nav: true,
    },
    Page {
        path: "/verify",
        label: "Verify",
        requires: Some(&[Permission::ManageSettings]),
        in_nav: true,
    },
    // Linked from the Verify page while smsdesk simulates.
    Page {
        path: "/simulator",
        label: "Simulated phones",
        requires: Some(&[Permission::ManageSettings]),
        in_nav: false,
    },
    Page {
        path: "/account",
        label: "Your account",
        requires: Some(&[]),
        in_nav: true,
    },
];

/// The page a path belongs to: an exact match, or the longest page path it is under.
pub fn page_for(path: &str) -> Option<&'static Page> {
    PAGES
        .iter()
        .filter(|p| {
            path == p.path
                || (p.path != "/"
                    && path.starts_with(p.path)
                    && path.as_bytes().get(p.path.len()) == Some(&b'/'))
        })
        .max_by_key(|p| p.path.len())
}

impl Page {
    /// Whether a signed-in user with this role may open it.
    pub fn allows(&self, role: Role) -> bool {
        self.requires
            .is_none_or(|needed| needed.iter().all(|p| role.can(*p)))
    }
}

/// The navigation entries a role sees.
pub fn nav_for(role: Role) -> impl Iterator<Item = &'static Page> {
    PAGES.iter().filter(move |p| p.in_nav && p.allows(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_page() {
        assert_eq!(page_for("/").map(|p| p.path), Some("/"));
        assert_eq!(page_for("/templates").map(|p| p.path), Some("/templates"));
        assert_eq!(
            page_for("/templates/shipment_created").map(|p| p.path),
            Some("/templates")
        );
        assert_eq!(page_for("/templatesx").map(|p| p.path), None);
        assert_eq!(page_for("/pkg/smsdesk.wasm").map(|p| p.path), None);
        assert_eq!(page_for("/login").map(|p| p.path), Some("/login"));
    }

    #[test]
    fn each_role_sees_only_its_pages() {
        let labels = |r: Role| nav_for(r).map(|p| p.label).collect::<Vec<_>>();
        assert_eq!(
            labels(Role::Admin),
            [
                "Overview",
                "Send",
                "Delivery log",
                "Inbox",
                "Templates",
                "Users",
                "Consent",
                "Spend",
                "Audit log",
                "Settings",
                "API keys",
                "Verify",
                "Your account"
            ]
        );
        assert_eq!(
            labels(Role::Dispatcher),
            [
                "Overview",
                "Send",
                "Delivery log",
                "Inbox",
                "Templates",
                "Your account"
            ]
        );
        assert_eq!(
            labels(Role::Compliance),
            [
                "Overview",
                "Delivery log",
                "Consent",
                "Audit log",
                "Your account"
            ]
        );
        assert_eq!(
            labels(Role::Finance),
            ["Overview", "Delivery log", "Spend", "Your account"]
        );
    }
}
