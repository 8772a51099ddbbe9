//! Runs each storage test on both backends.

/// Declares a test twice, once per backend, with the same body (`async fn(Db)`):
/// `on_both!(wrong_password_is_refused);` makes `wrong_password_is_refused::sqlite` and
/// `wrong_password_is_refused::postgres`.
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let t = backend::testing::TestDb::sqlite().await;
                super::$name(t.db.clone()).await;
                t.cleanup().await;
            }

            #[tokio::test]
            async fn postgres() {
                let t = backend::testing::TestDb::postgres().await;
                super::$name(t.db.clone()).await;
                t.cleanup().await;
            }
        }
    };
}
