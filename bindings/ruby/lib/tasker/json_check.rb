# frozen_string_literal: true

require 'json'

# json_check.rb - turning a handler's result into JSON text, strictly.
#
# Ruby's JSON generator accepts any object (it writes obj.to_s), which would store
# "#<Object:0x...>" where the handler meant something else. A result is accepted only if it
# is made of Hash (String or Symbol keys), Array, String, Symbol, Integer, finite Float,
# true, false and nil; anything else raises Errors::SerializationError naming the first
# offending value and where it is.
module TaskerCore
  module JsonCheck
    MAX_DEPTH = 100

    module_function

    # JSON text of value, or raise Errors::SerializationError.
    def dump(value, what = 'result')
      problem = find_problem(value, '', 0)
      raise Errors::SerializationError, "the handler's #{what} is not JSON-serialisable: #{problem}" if problem

      JSON.generate(value, max_nesting: false)
    rescue JSON::JSONError, EncodingError => e
      raise Errors::SerializationError, "the handler's #{what} is not JSON-serialisable: #{e.message}"
    end

    # A description of the first value that JSON cannot hold, or nil.
    def find_problem(value, path, depth)
      return "#{where(path)} is nested more than #{MAX_DEPTH} levels deep" if depth > MAX_DEPTH

      case value
      when String, Integer, true, false, nil, Symbol
        nil
      when Float
        value.finite? ? nil : "#{where(path)} is #{value}, which JSON cannot represent"
      when Hash
        value.each do |k, v|
          unless k.is_a?(String) || k.is_a?(Symbol)
            return "#{where(path)} has a key of class #{k.class} (#{k.inspect}); keys must be strings"
          end

          problem = find_problem(v, "#{path}.#{k}", depth + 1)
          return problem if problem
        end
        nil
      when Array
        value.each_with_index do |v, i|
          problem = find_problem(v, "#{path}[#{i}]", depth + 1)
          return problem if problem
        end
        nil
      else
        "#{where(path)} is a #{value.class}"
      end
    end

    def where(path)
      path.empty? ? 'the value' : path.sub(/\A\./, '')
    end
  end
end
