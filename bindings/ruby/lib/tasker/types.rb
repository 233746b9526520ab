# frozen_string_literal: true

# types.rb - what a handler returns: TaskerCore::Types::StepHandlerCallResult, built by
# StepHandler::Base#success / #failure (or returned directly).
module TaskerCore
  module Types
    # The outcome of one handler call. Success: result (stored as the step's result, which
    # children read with get_dependency_result) and metadata (stored in metadata.custom).
    # Failure: message, error_type, error_code (stored as metadata.error_code), retryable,
    # retry_after (seconds), metadata (metadata.custom), backtrace (an Array of Strings).
    class StepHandlerCallResult
      attr_reader :result, :metadata, :message, :error_type, :error_code, :retryable,
                  :retry_after, :backtrace

      def self.success(result: {}, metadata: {})
        new(true, result, metadata)
      end

      def self.error(message:, error_type: 'PermanentError', error_code: nil, retryable: false,
                     retry_after: nil, metadata: {}, backtrace: nil)
        new(false, {}, metadata, message, error_type, error_code, retryable, retry_after, backtrace)
      end

      # Positional, for speed on the hot path: use the factories above.
      def initialize(success, result = {}, metadata = {}, message = nil, error_type = nil, # rubocop:disable Metrics/ParameterLists
                     error_code = nil, retryable = false, retry_after = nil, backtrace = nil)
        @success = success ? true : false
        @result = result
        @metadata = metadata || {}
        @message = message
        @error_type = error_type
        @error_code = error_code
        @retryable = retryable ? true : false
        @retry_after = retry_after
        @backtrace = backtrace
      end

      def success?
        @success
      end

      def failure?
        !@success
      end

      alias retryable? retryable

      def to_h
        if @success
          { success: true, result: @result, metadata: @metadata }
        else
          { success: false, message: @message, error_type: @error_type, error_code: @error_code,
            retryable: @retryable, retry_after: @retry_after, metadata: @metadata }
        end
      end
    end
  end

  StepHandlerResult = Types::StepHandlerCallResult
end
