//! ListOffsets: earliest, latest, max-timestamp, and first-offset-at-or-after a timestamp.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::context::Context;
use crate::log::Partition;

/// Kafka's special timestamps in ListOffsets requests.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;

pub async fn handle(
    ctx: &Context,
    _rc: &RequestContext,
    version: i16,
    req: ListOffsetsRequest,
) -> Option<ListOffsetsResponse> {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.metadata.topic(t.name.0.as_str());
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1);
                    let part = topic
                        .as_ref()
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|t| ctx.metadata.led_partition(t, p.partition_index));
                    let result = part.and_then(|part| {
                        part.check_leader_epoch(p.current_leader_epoch)?;
                        lookup(part, p.timestamp, req.isolation_level == 1)
                            .map(|(o, t)| (o, t, part.leader_epoch()))
                    });
                    match result {
                        Ok((offset, timestamp, epoch)) => {
                            out.offset = offset;
                            out.timestamp = timestamp;
                            if version >= 4 {
                                out.leader_epoch = epoch;
                            }
                        }
                        Err(code) => out.error_code = code.code(),
                    }
                    out
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    Some(ListOffsetsResponse::default().with_topics(topics))
}

/// (offset, timestamp) for one partition and one requested timestamp. A read_committed
/// reader's log ends at the last stable offset, as in Kafka.
fn lookup(
    p: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), ResponseError> {
    let end = if read_committed {
        p.last_stable_offset()
    } else {
        p.high_watermark()
    };
    let found = match timestamp {
        LATEST => return Ok((end, -1)),
        EARLIEST | EARLIEST_LOCAL => return Ok((p.log_start_offset(), -1)),
        // No tiered storage: nothing is in, or pending upload to, remote storage.
        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => return Ok((-1, -1)),
        MAX_TIMESTAMP => p.max_timestamp_offset()?,
        ts if ts >= 0 => p.offset_for_timestamp(ts)?,
        _ => return Err(ResponseError::InvalidRequest),
    };
    Ok(found.filter(|(o, _)| *o < end).unwrap_or((-1, -1)))
}
