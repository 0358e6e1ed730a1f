import SBIBackend

extension FlowConfiguration {
    /// Neural-spline coupling; replaced by the real layer once SplineCoupling lands.
    func makeSplineCoupling(name: String, mask: [Float]) throws -> Bijector {
        throw SBIError.invalidArgument("the nsf estimator is not available in this build")
    }
}
