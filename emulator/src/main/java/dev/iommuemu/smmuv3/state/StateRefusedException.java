package dev.iommuemu.smmuv3.state;

/**
 * A saved device state that this SMMU cannot take (another profile, or a state the model could not
 * have produced); the message is a sentence for the person who started the migration or restart.
 * The model is unchanged when it is thrown.
 */
public final class StateRefusedException extends IllegalArgumentException {
    public StateRefusedException(String message) {
        super(message);
    }
}
