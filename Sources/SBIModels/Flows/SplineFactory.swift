extension FlowConfiguration {
    /// The neural-spline coupling of transform `name` (nsf).
    func makeSplineCoupling(name: String, mask: [Float]) throws -> Bijector {
        SplineCoupling(name: name, mask: mask, contextFeatures: conditioningFeatures, hidden: hidden,
                       activation: unaryActivation, bins: bins, tailBound: tailBound,
                       dropout: dropout ?? 0)
    }
}
