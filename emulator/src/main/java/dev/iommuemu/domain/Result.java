package dev.iommuemu.domain;

/** A value or an {@link Errno}: how every allocation of the domain model and of iommufd answers. */
public record Result<T>(T value, Errno error) {

    public static <T> Result<T> ok(T value) {
        return new Result<>(value, null);
    }

    public static <T> Result<T> err(Errno e) {
        return new Result<>(null, e);
    }

    public boolean isOk() {
        return error == null;
    }

    /** The value; only after {@link #isOk()}. */
    public T get() {
        if (error != null) {
            throw new IllegalStateException("no value: " + error);
        }
        return value;
    }
}
