//! Offload features: `-k`/`-K`.

use super::*;

pub(super) fn features(inner: &Inner) -> Result<Reply, String> {
    let nd = &inner.nd;
    let f = nd.with_adapter(|a| ethtool::get_features(a)).map_err(drv)?;
    Ok(Reply::Features {
        features: f.into_iter().map(feature_flag).collect(),
    })
}

pub(super) fn set_features(
    inner: &Inner,
    changes: Vec<protocol::FeatureChange>,
) -> Result<Reply, String> {
    let req: Vec<FeatureRequest> = changes
        .iter()
        .map(|c| FeatureRequest::new(&c.name, c.on))
        .collect();
    // The flags before are the adapter's (no device access, nothing crosses).
    let (before, after) = configure(inner, "-K", |a| {
        let before = features::list(a);
        ethtool::set_features(a, &req).map(|after| (before, after))
    })
    .map_err(drv)?;
    Ok(Reply::FeatureChanges {
        requested: changes,
        before: before.into_iter().map(feature_flag).collect(),
        after: after.into_iter().map(feature_flag).collect(),
    })
}

fn feature_flag(f: FeatureState) -> FeatureFlag {
    FeatureFlag {
        name: f.name,
        on: f.on,
        requested: f.requested,
        fixed: f.fixed,
    }
}
