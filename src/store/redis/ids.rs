//! Typed ids as Redis arguments.

use redis::{RedisWrite, ToRedisArgs, ToSingleRedisArg};

use crate::model::{ChatId, FlowId, InputRequestId, KeyId, RunId, TenantId};

macro_rules! id_to_redis {
    ($($id:ty),*) => {$(
        impl ToRedisArgs for $id {
            fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
                out.write_arg(self.as_bytes())
            }
        }

        impl ToSingleRedisArg for $id {}
    )*};
}

id_to_redis!(ChatId, FlowId, InputRequestId, KeyId, RunId, TenantId);
