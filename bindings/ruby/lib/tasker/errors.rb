# frozen_string_literal: true

# errors.rb - the exceptions a handler raises to fail its step (Tasker's TaskerCore::Errors).
#
# A handler that raises one of these gets a failure result whose error_type is the
# exception's class name without its modules ("RetryableError", "ValidationError", or the
# name of your own subclass) and whose retryable flag comes from the family:
#
#   RetryableError (retry_after:, context:)   retryable; retry_after asks for a delay (seconds)
#     TimeoutError, NetworkError
#   PermanentError (error_code:, context:)    not retryable; error_code is stored as the
#                                             result's metadata.error_code
#     ValidationError (field:), NotFoundError, SerializationError
#
# Whether a retry happens is still up to the template (retry.retryable, retry.max_attempts).
module TaskerCore
  module Errors
    # Base of every TaskerCore error.
    class Error < StandardError; end

    # A worker cannot be set up (bad option, template directory, handler directory).
    class ConfigurationError < Error; end

    # Base of the errors that become step failures.
    class ProceduralError < Error
      attr_reader :context

      def initialize(message = nil, context: {})
        super(message)
        @context = context || {}
      end

      def retryable?
        false
      end

      # The error_type stored with the failure: the class name without its modules.
      def error_type
        self.class.name.to_s.split('::').last
      end
    end

    # Another attempt may succeed: the step is retried while attempts remain.
    class RetryableError < ProceduralError
      attr_reader :retry_after

      def initialize(message = nil, retry_after: nil, context: {})
        super(message, context: context)
        @retry_after = retry_after
      end

      def retryable?
        true
      end
    end

    # No attempt will succeed: the step fails now.
    class PermanentError < ProceduralError
      attr_reader :error_code

      def initialize(message = nil, error_code: nil, context: {})
        super(message, context: context)
        @error_code = error_code
      end
    end

    # The input is invalid.
    class ValidationError < PermanentError
      attr_reader :field

      def initialize(message = nil, field: nil, error_code: nil, context: {})
        super(message, error_code: error_code, context: context)
        @field = field
      end
    end

    # Something the step needs does not exist.
    class NotFoundError < PermanentError; end

    # The handler's result (or metadata) cannot be stored as JSON.
    class SerializationError < PermanentError; end

    # A call the handler made timed out.
    class TimeoutError < RetryableError
      attr_reader :timeout_duration

      def initialize(message = nil, timeout_duration: nil, retry_after: nil, context: {})
        super(message, retry_after: retry_after, context: context)
        @timeout_duration = timeout_duration
      end
    end

    # A network call failed.
    class NetworkError < RetryableError
      attr_reader :status_code

      def initialize(message = nil, status_code: nil, retry_after: nil, context: {})
        super(message, retry_after: retry_after, context: context)
        @status_code = status_code
      end
    end
  end
end
